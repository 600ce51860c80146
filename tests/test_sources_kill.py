"""A sync killed with SIGKILL mid-way leaves every document whole, and its deletions and its record land together
or not at all: the database is as before the sync (plus whole documents it committed, which the next sync skips),
never a half. Real `citewise sources sync` processes, PostgreSQL and MiniLM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from core import db
from retrieval import sources
from tests.test_queue import assert_keyword_stats_exact, topic_paragraphs

pytestmark = pytest.mark.slow


def _count(url: str) -> int:
    with db.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM documents WHERE source = 'notes'").fetchone()[0]


def test_a_sync_killed_mid_way_leaves_the_database_before_or_after_it(url, embedder, settings, tmp_path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(20):
        (folder / f"old-{i:02d}.md").write_text(f"# Old {i}\n\n" + "\n\n".join(topic_paragraphs(i, 2)) + "\n")
    with db.connect(url, autocommit=True) as conn:
        sources.add(conn, sources.Source("notes", str(folder)))
    sources.sync(url, embedder, settings, "notes")
    with db.connect(url) as conn:
        synced_at = conn.execute("SELECT synced_at FROM sources").fetchone()[0]
    for i in range(5):
        (folder / f"old-{i:02d}.md").unlink()
    for i in range(160):
        (folder / f"new-{i:03d}.md").write_text(f"# New {i}\n\n" + "\n\n".join(
            f"## Part {p}\n\n" + topic_paragraphs(1000 + i * 10 + p, 1)[0] for p in range(4)) + "\n")

    env = {**os.environ, "CITEWISE_DATABASE_URL": url, "CITEWISE_HOME": str(tmp_path / "home"),
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "citewise.cli", "sources", "sync", "notes"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while _count(url) <= 20:  # the first batch of new documents has committed
        assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    assert proc.poll() is None, "the sync finished before it could be killed; give it more to do"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    with db.connect(url) as conn:
        assert conn.execute("SELECT synced_at FROM sources").fetchone()[0] == synced_at, "no record of a half sync"
        kept = conn.execute("SELECT count(*) FROM documents WHERE uri LIKE %s", (f"{folder}/old-%",)).fetchone()[0]
        assert kept == 20, "the deletions wait for the sync's record"
        halves = conn.execute(
            "SELECT count(*) FROM (SELECT d.id FROM documents d LEFT JOIN chunks c ON c.document_id = d.id "
            "GROUP BY d.id HAVING count(c.id) = 0 OR max(c.ordinal) <> count(c.id) - 1) x").fetchone()[0]
        assert halves == 0, "every committed document is whole"
        assert_keyword_stats_exact(conn)
        committed = conn.execute("SELECT count(*) FROM documents WHERE uri LIKE %s",
                                 (f"{folder}/new-%",)).fetchone()[0]
        assert 0 < committed < 160

    after = sources.sync(url, embedder, settings, "notes")
    assert after.ok and after.counts["deleted"] == 5 and after.counts["read"] == 160
    with db.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM documents WHERE source = 'notes'").fetchone()[0] == 175
        assert_keyword_stats_exact(conn)
