"""The long-lived resources a process opens once to answer questions: database pool, embedder, re-ranker, LLM."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from chat.engine import meaning
from chat.engine.llm import Endpoint, LLMError, endpoint, live
from core import db
from core.replicas import ReadRouter
from core.settings import Settings
from retrieval import store
from retrieval.embed import CachedQueries, Embedder, load_embedder
from retrieval.rerank import Reranker, load_reranker


@dataclass(frozen=True)
class Services:
    settings: Settings
    pool: ConnectionPool
    embedder: Embedder
    reranker: Reranker
    llm: Endpoint
    reads: ReadRouter | None = None  # searches on read replicas when CITEWISE_DATABASE_REPLICA_URLS is set

    @contextlib.contextmanager
    def search_connection(self) -> Iterator[psycopg.Connection]:
        """A connection for a search: a read replica when configured and current, else the primary."""
        if self.reads is None:
            with self.pool.connection() as conn:
                yield conn
        else:
            with self.reads.connection() as conn:
                yield conn

    def close(self) -> None:
        if self.reads is not None:
            self.reads.close()
        self.pool.close()

    def model(self) -> Endpoint:
        """The LLM to call for this answer: the managed local server is restarted if it died (chat.engine.llm.live)."""
        return live(self.llm, self.settings.llm)


def open_pool(url: str, max_size: int = 10) -> ConnectionPool:
    db.connect(url).close()  # fail early, with the masked URL, if unreachable or without pgvector
    # check: a connection is tested as it is taken, so after a database restart the pool reconnects by itself
    # instead of handing each request a dead connection
    return ConnectionPool(url, min_size=1, max_size=max_size, configure=register_vector,
                          kwargs={"autocommit": True}, open=True, name="citewise",
                          check=ConnectionPool.check_connection)


def open_services(settings: Settings, *, start_llm: bool = True, pool_size: int = 10) -> Services:
    url = db.open_database(settings)
    pool = open_pool(url, pool_size)
    embedder = CachedQueries(load_embedder(settings.embedding))  # a server sees the same questions again
    try:
        with pool.connection() as conn:
            store.check_model(conn, embedder.name, embedder.dim)
    except store.ModelMismatchError:
        pool.close()
        raise
    meaning.for_settings(settings.verify)  # loaded now, so the first answer does not wait for it
    llm = endpoint(settings.llm) if start_llm else None
    reads = (ReadRouter(pool, settings.replica_urls, settings.replica_max_lag_s, pool_size)
             if settings.replica_urls else None)
    return Services(settings, pool, embedder, load_reranker(settings.rerank), llm, reads)  # type: ignore[arg-type]


def open_or_exit(cfg, pool_size: int = 10, start_llm: bool = True):
    """The process's services (database pool, embedder, re-ranker, LLM), or exit with the reason (for commands)."""
    from core import pgserver
    from core.cli import console, fail
    from retrieval import store

    try:
        with console.status("Starting the database, the embedding model and the LLM…"):
            return open_services(cfg, pool_size=pool_size, start_llm=start_llm)
    except (db.DatabaseError, pgserver.EmbeddedServerError, store.ModelMismatchError, LLMError) as exc:
        fail(str(exc))
