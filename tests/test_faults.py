"""Faults under load: the database restarted while users ask (locust, over the JSON API), the local llama.cpp
server killed mid-answer, the data directory's disk filling during an ingest. Each against real processes: a
`citewise serve` with its own embedded PostgreSQL, the real local LLM, a size-capped tmpfs (made without root:
tests/small_disk.py)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from core import pgserver
from evals.bench.load import check_feedback, run
from tests.helpers.serving import own_server

pytestmark = pytest.mark.slow


def test_a_database_restart_under_load_fails_clearly_and_recovers_by_itself(tmp_path) -> None:
    with own_server(home=tmp_path / "home") as (base, url, home):
        result: dict = {}
        load = threading.Thread(target=lambda: result.update(run(base, users=4, duration=24, timeout=60)))
        load.start()
        time.sleep(8)
        assert pgserver.stop(home / "pg")
        time.sleep(4)  # users keep asking while the database is down
        after = pgserver.ensure_running(home / "pg")
        load.join()
        assert after == url, "the restarted database keeps its address"
        r = httpx.post(f"{base}/v1/ask", json={"question": "Which file types can I ingest?"}, timeout=60)
        assert r.status_code == 200 and r.json()["citations"], "the server recovered without a restart"
        stored = check_feedback(url, result["feedback_ids"])
    print(f"\ndatabase restart under load: {({k: v for k, v in result.items() if k not in ('feedback_ids',)})}")
    assert result["answered"] > 20 and result["feedback_posted"] > 5
    assert stored == result["feedback_posted"], "every acknowledged rating is in the database"
    # a request the restart cuts off is told so (503, Retry-After); others wait for the pool to reconnect
    assert result["errors"] == 0 and result["refusals_without_retry_after"] == 0, result["failures"]


def test_killing_the_local_llm_mid_stream_fails_clearly_and_the_next_question_restarts_it(
        demo_db, settings, tmp_path) -> None:
    import json
    import os
    import signal

    import psycopg

    from chat.engine.llm import MODEL_FILE, assemble_model
    from tests.helpers.serving import serve

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    model = assemble_model(settings.llm.models_dir)  # the copy the slow tier shares, linked, not copied again
    for name in (MODEL_FILE, model.with_suffix(".verified").name):
        (home / "models" / name).symlink_to(model.parent / name)
    env = {"CITEWISE_DATABASE_URL": demo_db, "CITEWISE_LLM_BASE_URL": "", "CITEWISE_LLM_THREADS": "2"}
    question = "List each file type citewise can ingest and explain in detail how each one is read."
    with serve(home, env, timeout=300) as base:
        first_pid = json.loads((home / "llm" / "server.json").read_text())["pid"]
        events: list[tuple[str, dict]] = []
        kill = threading.Timer(3.0, os.killpg, (first_pid, signal.SIGKILL))
        with httpx.stream("POST", f"{base}/v1/ask?stream=true", timeout=300,
                          json={"question": question, "sampling": {"max_tokens": 400}}) as r:
            kill.start()  # llama.cpp dies while it generates: 3 s into the answer, or at its first sentence
            event = ""
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[6:])))
                    if event == "token" and kill.is_alive():
                        kill.cancel()
                        os.killpg(first_pid, signal.SIGKILL)
        kill.join()
        kinds = [e for e, _ in events]
        assert kinds[-1] == "error" and "answer" not in kinds, kinds
        assert "the local LLM stopped while answering" in events[-1][1]["detail"], events[-1]
        with psycopg.connect(demo_db) as conn:
            status = conn.execute("SELECT status FROM turns WHERE question = %s ORDER BY created_at DESC LIMIT 1",
                                  (question,)).fetchone()
        assert status == ("failed",), "the cut-off turn is recorded as failed"
        after = httpx.post(f"{base}/v1/ask", json={"question": "Which file types can I ingest?"}, timeout=300)
        assert after.status_code == 200 and after.json()["answer"], after.text
        second_pid = json.loads((home / "llm" / "server.json").read_text())["pid"]
        assert second_pid != first_pid, "the next question started the local LLM again"
        os.killpg(second_pid, signal.SIGTERM)


def _stored(disk) -> int:
    import psycopg

    try:
        port = int((disk.view / ".pg.port").read_text())
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/{pgserver.DATABASE}", connect_timeout=2) as conn:
            return conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    except (OSError, ValueError, psycopg.Error):
        return 0


def _pg(disk, env, action: str, check: bool = True) -> str:
    """``pgserver.ensure_running`` or ``stop`` on the small disk's data directory, run inside its namespace."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from core import pgserver; "
            f"print(pgserver.{action}(Path(sys.argv[1])))")
    proc = subprocess.run(disk.command([sys.executable, "-c", code, str(disk.path / "pg")]), env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 or not check, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_a_full_disk_during_an_ingest_is_a_clear_error_and_nothing_is_half_written(tmp_path) -> None:
    """The data directory on a size-capped tmpfs; once the ingest has stored some documents, the rest of the disk
    is taken (a filler file), as another process filling the disk would. The tmpfs lives in a private mount
    namespace (tests/small_disk.py), so the test needs no root: for a user who is not root the namespace is an
    unprivileged user namespace's."""
    import os
    import shutil
    import subprocess
    import sys

    import psycopg

    from evals.bench.crash_ingest import corpus, problems
    from tests.small_disk import small_disk

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CITEWISE_DATABASE_URL"} | {"CITEWISE_HOME": str(home)}
    (tmp_path / "docs").mkdir()
    docs = corpus(tmp_path / "docs", 400, 0)
    with small_disk(home, 400) as disk:
        ingest = disk.command([sys.executable, "-m", "citewise.cli", "ingest", str(docs), "--source", "disk"])
        proc = subprocess.Popen(ingest, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + 240
            while time.time() < deadline and proc.poll() is None and _stored(disk) < 20:
                time.sleep(0.5)
            assert proc.poll() is None, "the ingest ended before the disk filled: " + (proc.stdout.read() or "")
            free = shutil.disk_usage(disk.view).free
            assert free < 400 * 2**20, "the test fills the small disk, not the one it is mounted on"
            with open(disk.view / "filler", "wb") as filler:
                os.posix_fallocate(filler.fileno(), 0, free)
            out = proc.communicate(timeout=300)[0]
            print(f"\nfull-disk ingest output:\n{out[-1500:]}")
            assert proc.returncode != 0, out
            flat = " ".join(out.split())
            assert "the database's disk is full" in flat, out
            assert "Free space on the disk that holds the database" in flat, out
            assert "Traceback" not in out and out.count("could not be stored") == 0, "one clear error, not one per file"
            (disk.view / "filler").unlink()
            url = _pg(disk, env, "ensure_running")
            with psycopg.connect(url) as conn:
                stored = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            assert 20 <= stored < 400 and problems(url) == [], "what was stored is whole; nothing is half-written"
            again = subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=600)
            assert again.returncode == 0, again.stdout + again.stderr
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 400
            assert problems(url) == []
        finally:
            if proc.poll() is None:
                proc.kill()
            _pg(disk, env, "stop", check=False)
