"""Past one machine, on loopback with real processes: a primary and streaming replicas started from the embedded
PostgreSQL's binaries (pg_basebackup), searches routed to a replica and writes to the primary, lag handled,
a stopped replica falling back to the primary, and two stateless `citewise serve` replicas on one database."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from core import db, pgserver
from core.replicas import ReadRouter, wait_caught_up
from retrieval.ingest import IngestOptions, ingest
from tests.conftest import write_files
from tests.helpers.serving import serve
from tests.helpers.standin_llm import StandIn, grounded_reply

pytestmark = pytest.mark.slow
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def primary(tmp_path_factory, embedder, settings):
    data = tmp_path_factory.mktemp("primary") / "pg"
    url = pgserver.ensure_running(data)
    db.migrate(url)
    ingest(url, embedder, [DOCS], settings, IngestOptions(source="handbook"))
    yield url
    pgserver.stop(data)


@pytest.fixture(scope="module")
def replica(primary, tmp_path_factory):
    data = tmp_path_factory.mktemp("replica") / "pg"
    url = pgserver.start_replica(primary, data)
    yield url, data
    pgserver.stop(data)


def _in_recovery(conn: psycopg.Connection) -> bool:
    return bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])


def _documents(url: str, uri_like: str) -> int:
    with db.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM documents WHERE uri LIKE %s", (uri_like,)).fetchone()[0]


def test_a_lagging_replica_is_skipped_and_an_ingest_returns_only_once_replicas_see_it(
        primary, embedder, settings, tmp_path, caplog) -> None:
    data = tmp_path / "delayed" / "pg"
    delayed = pgserver.start_replica(primary, data, apply_delay_s=3)  # replay held back 3 s, as under load
    try:
        assert wait_caught_up(primary, (delayed,), timeout_s=60) == []
        with ConnectionPool(primary, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
            router = ReadRouter(pool, (delayed,), max_lag_s=1.0)
            with router.connection() as conn:
                assert _in_recovery(conn), "a current replica serves the search"
            ingest(primary, embedder, [write_files(tmp_path / "a", {"lag-a.md": "# Lag\n\nThe quokka rota "
                                                                    "changes every Tuesday at noon."})],
                   settings, IngestOptions(source="lag"))
            assert _documents(delayed, "%lag-a.md") == 0, "the replica really is behind"
            time.sleep(0.6)  # the router samples the primary's WAL position at most every 0.5 s
            with router.connection() as conn:
                assert _in_recovery(conn), "less than CITEWISE_REPLICA_MAX_LAG behind, the replica still serves"
            time.sleep(1.5)
            with caplog.at_level(logging.WARNING, logger="citewise.replicas"), router.connection() as conn:
                assert not _in_recovery(conn), "a lagging replica is skipped: the primary serves the search"
            assert "behind" in caplog.text
            assert wait_caught_up(primary, (delayed,), timeout_s=60) == []
            assert _documents(delayed, "%lag-a.md") == 1
            with router.connection() as conn:
                assert _in_recovery(conn), "caught up, the replica serves again"
            assert router.served == {"replica": 3, "primary": 1}
            router.close()

        # the CLI's ingest returns only when replicas have replayed it: read-your-own-writes on a replica
        files = write_files(tmp_path / "b", {"lag-b.md": "# Wombats\n\nThe wombat budget is reviewed monthly."})
        env = {**os.environ, "CITEWISE_DATABASE_URL": primary, "CITEWISE_DATABASE_REPLICA_URLS": delayed,
               "CITEWISE_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
        done = subprocess.run([sys.executable, "-m", "citewise.cli", "ingest", str(files), "--source", "lag"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _documents(delayed, "%lag-b.md") == 1, "visible on the replica the moment the ingest returns"
    finally:
        pgserver.stop(data)


def _metric(base: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if m and all(part in (m.group(1) or "") for part in want.split(",") if part):
            total += float(m.group(2))
    return total


def test_two_app_replicas_share_conversations_and_thumbs_and_search_on_the_read_replica(
        primary, replica, tmp_path) -> None:
    replica_url, replica_dir = replica
    env = {"CITEWISE_DATABASE_URL": primary, "CITEWISE_DATABASE_REPLICA_URLS": replica_url,
           "CITEWISE_LLM_MODEL": "standin", "CITEWISE_LLM_API_KEY": "x"}
    for name in "ab":
        (tmp_path / name).mkdir()
    with StandIn(grounded_reply) as llm, \
            serve(tmp_path / "a", {**env, "CITEWISE_LLM_BASE_URL": llm.base_url}) as a, \
            serve(tmp_path / "b", {**env, "CITEWISE_LLM_BASE_URL": llm.base_url}) as b:
        first = httpx.post(f"{a}/v1/ask", json={"question": "How do I filter search results by date?"},
                           timeout=60).json()
        assert first["citations"], first
        follow = httpx.post(f"{b}/v1/ask", json={"question": "And by author?",
                                                 "conversation_id": first["conversation_id"]}, timeout=60).json()
        assert follow["conversation_id"] == first["conversation_id"]
        assert "filter search results by date" in follow["standalone_question"], \
            "the other app replica read the conversation's history from the shared database"
        ids = []
        for base, turn, value in ((a, first, "up"), (b, first, "down"), (a, follow, "up"), (b, follow, "up")):
            r = httpx.post(f"{base}/v1/feedback", json={"turn_id": turn["turn_id"], "value": value}, timeout=30)
            assert r.status_code == 200, r.text
            ids.append(r.json()["feedback_id"])
        with db.connect(primary) as conn:
            rows = conn.execute("SELECT id, value FROM feedback WHERE id = ANY(%s)", (ids,)).fetchall()
            assert sorted(rows) == sorted(zip(ids, [1, -1, 1, 1], strict=True)), "each thumb landed once"
            assert conn.execute("SELECT count(*) FROM turns WHERE conversation_id LIKE %s",
                                ("%:" + first["conversation_id"],)).fetchone()[0] == 2
        assert _metric(a, "citewise_search_connections_total", target="replica") >= 1
        assert _metric(a, "citewise_search_connections_total", target="primary") == 0
        assert _metric(a, "citewise_feedback_total", value="up") == 2
        assert _metric(b, "citewise_feedback_total", value="down") == 1
        assert _metric(a, "citewise_answer_seconds_count") == 1
        assert _metric(a, "http_requests_total") >= 3

        pgserver.stop(replica_dir)
        after = httpx.post(f"{a}/v1/ask", json={"question": "Which file types can I ingest?"}, timeout=60)
        assert after.status_code == 200 and after.json()["citations"], after.text
        assert _metric(a, "citewise_search_connections_total", target="primary") == 1
        log = (tmp_path / "a" / "serve.log").read_text()
        assert "read replica" in log and "unreachable" in log, log[-2000:]
