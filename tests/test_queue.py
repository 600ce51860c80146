"""Distributed ingest on procrastinate's PostgreSQL queue, with real `citewise worker` processes: two workers share
the jobs and ingest every file exactly once; a worker killed with SIGKILL mid-document leaves no half document and
its job is retried by another; keyword statistics stay exact throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from core import db
from core.settings import Settings
from retrieval import queue
from retrieval.ingest import IngestOptions

pytestmark = pytest.mark.slow
_WORDS = ("budget review ticket deploy vacation invoice rollback backup access group policy search index "
          "embedding answer source citation worker queue replica latency metric contract travel receipt laptop "
          "printer network password onboarding payroll holiday manager schedule release incident").split()


def topic_paragraphs(seed: int, n: int) -> list[str]:
    """``n`` paragraphs of distinct pseudo-text (different term statistics per seed)."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(60)).capitalize() + "." for _ in range(n)]


def _worker(url: str, home: Path, log: Path, *extra: str, **env: str) -> subprocess.Popen:
    environ = {**os.environ, "CITEWISE_DATABASE_URL": url, "CITEWISE_HOME": str(home), "HF_HUB_OFFLINE": "1",
               "CITEWISE_WORKER_HEARTBEAT": "1", "CITEWISE_WORKER_STALLED_AFTER": "4", **env}
    return subprocess.Popen([sys.executable, "-m", "citewise.cli", "worker", *extra], env=environ,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _ingested(log: Path) -> list[str]:
    return [line.split(" ingested ", 1)[1].split(":", 1)[0]
            for line in log.read_text().splitlines() if " ingested " in line]


def _jobs(url: str) -> dict[str, tuple[str, int]]:
    with db.connect(url) as conn:
        rows = conn.execute("SELECT args->>'path', status::text, attempts FROM procrastinate_jobs "
                            "WHERE queue_name = %s", (queue.QUEUE,)).fetchall()
    return {p: (s, a) for p, s, a in rows}


def assert_keyword_stats_exact(conn: psycopg.Connection) -> None:
    """The trigger-kept statistics equal a recount of the chunks (concurrent writers included)."""
    n, total = conn.execute("SELECT n_chunks, total_len FROM keyword_stats").fetchone()
    assert (n, total) == conn.execute("SELECT count(*), coalesce(sum(keyword_len), 0) FROM chunks").fetchone()
    wrong = conn.execute(
        "SELECT count(*) FROM (SELECT t, count(*) AS df FROM chunks, unnest(keyword_terms) AS t GROUP BY t) c "
        "FULL JOIN (SELECT term_id, df FROM keyword_df WHERE df > 0) k ON k.term_id = c.t "
        "WHERE c.df IS DISTINCT FROM k.df").fetchone()[0]
    assert wrong == 0, f"{wrong} terms have a document frequency that differs from a recount"


def test_two_workers_ingest_every_file_exactly_once(url, tmp_path) -> None:
    files = tmp_path / "corpus"
    files.mkdir()
    for i in range(16):
        (files / f"note-{i:02d}.md").write_text(f"# Note {i}\n\n" + "\n\n".join(topic_paragraphs(i, 3)) + "\n")
    (files / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    done = queue.enqueue(url, [files], IngestOptions(source="notes"))
    assert done.queued == 17 and not done.failures
    again = queue.enqueue(url, [files], IngestOptions(source="notes"))
    assert again.queued == 0 and again.already_queued == 17, "a file still waiting is not queued twice"

    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [_worker(url, tmp_path / "home", log, "--until-empty") for log in logs]
    for w in workers:
        assert w.wait(timeout=600) == 0
    by_worker = [_ingested(log) for log in logs]
    assert all(by_worker), f"both workers took jobs: {[len(b) for b in by_worker]}"
    everything = by_worker[0] + by_worker[1]
    assert sorted(everything) == sorted(set(everything)), "no file was ingested twice"
    assert len(everything) == 17
    jobs = _jobs(url)
    assert jobs[str((files / "broken.pdf").resolve())][0] == "failed", "a bad file's job fails, with its reason"
    assert "broken.pdf" in logs[0].read_text() + logs[1].read_text()
    assert sum(s == "succeeded" for s, _ in jobs.values()) == 16
    with db.connect(url) as conn:
        docs = conn.execute("SELECT count(*), count(DISTINCT uri) FROM documents WHERE source = 'notes'").fetchone()
        assert docs == (16, 16)
        assert_keyword_stats_exact(conn)
    assert queue.status(url) == {"failed": 1, "succeeded": 16}


def test_a_worker_killed_mid_document_leaves_no_half_document_and_its_job_is_retried(url, tmp_path) -> None:
    files = tmp_path / "corpus"
    files.mkdir()
    big = files / "handbook.md"
    big.write_text("# Handbook\n\n" + "\n\n".join(
        f"## Part {i}\n\n" + "\n\n".join(topic_paragraphs(i, 4)) for i in range(120)) + "\n")
    (files / "small.md").write_text("# Small\n\n" + "\n\n".join(topic_paragraphs(7, 2)) + "\n")
    queue.enqueue(url, [big], IngestOptions(source="hb"))
    home = tmp_path / "home"
    first = _worker(url, home, tmp_path / "w1.log")
    deadline = time.monotonic() + 180
    while _jobs(url)[str(big.resolve())][0] != "doing":
        assert time.monotonic() < deadline and first.poll() is None, (tmp_path / "w1.log").read_text()
        time.sleep(0.2)
    time.sleep(2.0)  # inside the document: loading, chunking, embedding hundreds of chunks
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert _jobs(url)[str(big.resolve())][0] == "doing", "killed before it could finish"
    with db.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0, "no half document was committed"
        assert_keyword_stats_exact(conn)

    queue.enqueue(url, [files / "small.md"], IngestOptions(source="hb"))
    second = _worker(url, home, tmp_path / "w2.log")
    try:
        deadline = time.monotonic() + 300
        while any(s != "succeeded" for s, _ in _jobs(url).values()):
            assert time.monotonic() < deadline and second.poll() is None, (tmp_path / "w2.log").read_text()
            time.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    log = (tmp_path / "w2.log").read_text()
    assert "requeued stalled job" in log, log
    status, attempts = _jobs(url)[str(big.resolve())]
    assert status == "succeeded" and attempts == 2
    with db.connect(url) as conn:
        n, ordinals = conn.execute(
            "SELECT count(*), array_agg(c.ordinal ORDER BY c.ordinal) FROM chunks c JOIN documents d "
            "ON d.id = c.document_id WHERE d.uri = %s", (str(big.resolve()),)).fetchone()
        assert n > 200 and ordinals == list(range(n)), "the retried document is whole, once"
        assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 2
        assert_keyword_stats_exact(conn)


def _first_synced_source(url: str, timeout: float) -> dict:
    """The first source's row once it has synced (or as it is when ``timeout`` runs out)."""
    from retrieval import sources

    deadline = time.monotonic() + timeout
    while True:
        with db.connect(url) as conn:
            row = sources.listing(conn)[0]
        if row["synced_at"] is not None or time.monotonic() > deadline:
            return row
        time.sleep(1)


def test_a_worker_syncs_a_source_when_its_schedule_is_due(url, tmp_path) -> None:
    from retrieval import sources

    folder = tmp_path / "handbook"
    folder.mkdir()
    for i in range(3):
        (folder / f"note-{i}.md").write_text(f"# Note {i}\n\n{topic_paragraphs(i, 1)[0]}\n")
    with db.connect(url, autocommit=True) as conn:
        sources.add(conn, sources.Source("handbook", str(folder), every_s=3600))  # never synced: due at once
    log = tmp_path / "w.log"
    worker = _worker(url, tmp_path / "home", log)
    try:
        row = _first_synced_source(url, 150)  # the periodic deferrer ticks each minute
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=60)
    assert row["synced_at"] is not None, log.read_text()[-2000:]
    assert row["result"] == "ok" and row["documents"] == 3 and row["counts"]["added"] == 3
    assert row["next_run"] > row["synced_at"]
    assert "synced source handbook" in log.read_text()


def test_serve_runs_a_worker_when_none_is_alive_so_scheduled_syncs_run_on_one_machine(url, tmp_path) -> None:
    from retrieval import sources
    from tests.helpers.serving import serve
    from tests.helpers.standin_llm import StandIn

    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "a.md").write_text(f"# A\n\n{topic_paragraphs(1, 1)[0]}\n")
    with db.connect(url, autocommit=True) as conn:
        sources.add(conn, sources.Source("handbook", str(folder), every_s=600))
    home = tmp_path / "home"
    home.mkdir()
    with StandIn(lambda req: "ok") as llm, serve(home, {"CITEWISE_DATABASE_URL": url,
                                                         "CITEWISE_LLM_BASE_URL": llm.base_url,
                                                         "CITEWISE_LLM_MODEL": "standin", "CITEWISE_LLM_API_KEY": "x"}):
        row = _first_synced_source(url, 120)
        assert row["synced_at"] is not None and row["documents"] == 1, (home / "serve.log").read_text()[-3000:]
        assert queue.alive_workers(url, Settings.from_env({})) == 1
    assert "run in this process" in (home / "serve.log").read_text()
