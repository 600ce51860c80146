from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from retrieval.ingest import IngestOptions, ingest
from tests.test_store import keyword_stats_consistent


def _corpus(root: Path, n: int) -> Path:
    for i in range(n):
        body = " ".join(f"Paragraph {j} of document {i} describes process {i * 7 + j}." for j in range(12))
        (root / f"doc{i:03d}.md").write_text(f"# Document {i}\n\n{body}\n\n## Details\n\n{body}")
    return root


def _rows(conn) -> set[tuple]:
    return set(conn.execute(
        "SELECT d.id, d.uri, c.id, c.ordinal, c.text, c.text_hash "
        "FROM documents d JOIN chunks c ON c.document_id = d.id"
    ).fetchall())


def _consistent(conn) -> None:
    orphans = conn.execute("SELECT count(*) FROM documents d WHERE NOT EXISTS "
                           "(SELECT 1 FROM chunks c WHERE c.document_id = d.id)").fetchone()[0]
    assert orphans == 0, "a document was stored without its chunks"
    gaps = conn.execute("SELECT count(*) FROM (SELECT document_id, max(ordinal) + 1 AS n, count(*) AS c "
                        "FROM chunks GROUP BY document_id) s WHERE n <> c").fetchone()[0]
    assert gaps == 0, "a document is missing some of its chunks"
    keyword_stats_consistent(conn)


def test_killed_ingest_leaves_whole_documents_and_rerun_completes_it(tmp_path, url, server_url, embedder, settings,
                                                                    template_name):
    (tmp_path / "corpus").mkdir()
    corpus = _corpus(tmp_path / "corpus", 160)
    env = {**os.environ, "CITEWISE_DATABASE_URL": url, "CITEWISE_HOME": str(settings.home)}
    proc = subprocess.Popen([sys.executable, "-m", "citewise.cli", "ingest", str(corpus), "--source", "c"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stored = 0
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            stored = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            if stored:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert 0 < stored < 160, f"the kill should land mid-ingest (stored {stored})"
        _consistent(conn)
    rerun = ingest(url, embedder, [corpus], settings, IngestOptions(source="c"))
    assert rerun.failed == 0
    with psycopg.connect(url, autocommit=True) as conn:
        _consistent(conn)
        after_rerun = _rows(conn)
        assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 160
    # a clean ingest of the same corpus gives exactly the same rows
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(server_url)
    clean_name = urlsplit(url).path.strip("/") + "_clean"
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{clean_name}" TEMPLATE "{template_name}"')
    clean_url = urlunsplit(parts._replace(path=f"/{clean_name}"))
    try:
        ingest(clean_url, embedder, [corpus], settings, IngestOptions(source="c"))
        with psycopg.connect(clean_url, autocommit=True) as conn:
            assert _rows(conn) == after_rerun
    finally:
        with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{clean_name}" WITH (FORCE)')
