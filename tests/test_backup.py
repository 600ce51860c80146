"""Backup and restore through the CLI, verified: the same rows, the same content, the same search and replay."""

from __future__ import annotations

import os
import tarfile
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from chat.engine.services import Services, open_pool
from chat.feedback.replay import replay
from chat.turns.store import record_feedback
from core import db
from core.backup import BackupError, facts, restore
from retrieval.filters import EVERYTHING
from retrieval.rerank import load_reranker
from retrieval.search import search
from tests.corpus import documents, store_documents


@pytest.fixture
def empty_url(server_url):
    """A database with nothing in it (not even the migrations), as a new server or home would have."""
    name = f"citewise_restore_{os.getpid()}"
    admin_url = urlunsplit(urlsplit(server_url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_backup_restores_into_an_empty_database_with_identical_search_and_replay(
        run, url, conn, empty_url, embedder, settings, tmp_path) -> None:
    store_documents(conn, embedder, settings, documents())
    turn = conn.execute("INSERT INTO turns (conversation_id, user_id, channel, question, standalone_question, "
                        "sampling, answer, citations, retrieved) VALUES ('c', 'ada', 'cli', 'How many vacation days?', "
                        "'How many vacation days?', '{}', '25 [1].', '[]', '[]') RETURNING id::text").fetchone()[0]
    record_feedback(conn, turn, "up", "good", user_id="ada")
    before = facts(conn)

    archive = tmp_path / "citewise.backup"
    made = run("backup", str(archive))
    assert made.exit_code == 0, made.output
    with tarfile.open(archive) as tar:
        assert set(tar.getnames()) == {"database.dump", "manifest.json"}

    os.environ["CITEWISE_DATABASE_URL"] = empty_url  # the run fixture's monkeypatch restores it
    done = run("restore", str(archive))
    assert done.exit_code == 0, done.output
    assert "content hashes match" in done.output
    with db.connect(empty_url) as restored:
        after = facts(restored)
        assert after["tables"] == before["tables"] and after["tables"]["chunks"]["rows"] > 0
        assert after["embedding_model"] == before["embedding_model"] == embedder.name
        for q in ("How many vacation days do new employees get?", "on-call rotation"):
            a = [(h.chunk_id, round(h.score, 9)) for h in search(conn, embedder, q, scope=EVERYTHING, k=10)]
            b = [(h.chunk_id, round(h.score, 9)) for h in search(restored, embedder, q, scope=EVERYTHING, k=10)]
            assert a == b and a
    reports = []
    for target in (url, empty_url):
        pool = open_pool(target, 2)
        try:
            reports.append(replay(Services(settings, pool, embedder, load_reranker(settings.rerank), None)))  # type: ignore[arg-type]
        finally:
            pool.close()
    assert reports[0] == reports[1] and reports[0].up == 1

    again = run("restore", str(archive))
    assert again.exit_code == 2 and "is not empty" in again.output, "a restore never overwrites data"


def test_a_file_that_is_not_a_backup_is_refused_clearly(tmp_path, empty_url) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a backup")
    with pytest.raises(BackupError, match="is not a citewise backup"):
        restore(bogus, empty_url)
