"""Retrievers learned from feedback, versioned in the database: store, load, activate, roll back.

What a version is lives in :mod:`retrieval.adapter`: a query adapter ``W`` (passages keep their stored vectors, so
a new version needs no re-index and takes effect on the next search), applied only near the questions it was
trained on, with a memory of the ratings themselves. The first kind applied ``W`` to every query; on SciFact that
pulled questions about unrated documents toward the rated ones (nDCG@10 0.736 → 0.696), so the gate now checks
questions no rating touched before a version is used, and old rows of that kind still load and serve.

Versions live in ``retrievers`` (migrations 0012, 0013). At most one is active; :func:`rollback` re-activates the
one before it at once, and every turn records the version its search used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from retrieval.adapter import Adapter, TrainSettings, train

__all__ = ["Adapter", "LearnError", "Pair", "TrainSettings", "train"]

KIND = "query-adapter"  # the first kind: W applied to every query
LOCAL_KIND = "local-adapter"  # W near rated questions only, with the memory of ratings (retrieval/adapter.py)


class LearnError(ValueError):
    """Learning cannot proceed (too little feedback, unknown version); the message says what to do."""


@dataclass(frozen=True)
class Pair:
    """One training example: a question, a passage that answered it, passages that did not (by chunk id)."""

    question: str
    positive: str
    negatives: tuple[str, ...]
    turn_id: str


def save(conn: psycopg.Connection, base_model: str, weights: np.ndarray | Adapter, training: dict, metrics: dict,
         status: str = "candidate") -> int:
    """Store a version: a bare ``W`` (the first kind) or a whole :class:`Adapter` (anchors and memory too)."""
    model = weights if isinstance(weights, Adapter) else None
    w = model.weights if model else weights
    local = model is not None and model.anchors is not None
    row = conn.execute(
        "INSERT INTO retrievers (kind, base_model, dim, weights, extra, training, metrics, status) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (LOCAL_KIND if local else KIND, base_model, w.shape[0], w.astype(np.float32).tobytes(),
         model.to_bytes() if local else None, Jsonb(training), Jsonb(metrics), status)).fetchone()
    return int(row[0])


_CACHE: dict[tuple[str, int, str], Adapter] = {}


def load(conn: psycopg.Connection, version: int, created_at: str | None = None) -> Adapter:
    """A stored version, cached: a version's weights never change. The key holds the database and the row's
    creation time besides the id, because one process may read several databases (the evals' copies, a restored
    backup, the tests' freshly emptied ones) whose ids start again at 1. A caller that read the creation time with
    the id passes it, saving a query per search."""
    if created_at is None:
        row = conn.execute("SELECT created_at::text FROM retrievers WHERE id = %s", (version,)).fetchone()
        if row is None:
            raise LearnError(f"no learned retriever version {version}; `citewise learn --status` lists them")
        created_at = row[0]
    key = (f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}", version, created_at)
    if key not in _CACHE:
        base, dim, blob, extra = conn.execute("SELECT base_model, dim, weights, extra FROM retrievers WHERE id = %s",
                                              (version,)).fetchone()
        weights = np.frombuffer(blob, dtype=np.float32).reshape(dim, dim).copy()
        _CACHE[key] = Adapter.from_bytes(version, base, weights, bytes(extra) if extra else None)
    return _CACHE[key]


def resolve(conn: psycopg.Connection, which: str) -> Adapter | None:
    """``none``, ``active``, ``latest`` (the newest version, whatever its state) or a version id."""
    if which == "none":
        return None
    if which == "active":
        return active(conn)
    if which == "latest":
        row = conn.execute("SELECT max(id) FROM retrievers").fetchone()
        if row[0] is None:
            raise LearnError("no learned retriever yet; run `citewise learn` first")
        return load(conn, row[0])
    try:
        return load(conn, int(which))
    except ValueError:
        raise LearnError(f"--learned {which!r}: give none, active, latest or a version number") from None


def active(conn: psycopg.Connection) -> Adapter | None:
    """The version searches use now, or None (the base model). One indexed row: cheap enough per search, and a
    promotion or rollback by any process takes effect on every server at its next search."""
    row = conn.execute("SELECT id, created_at::text FROM retrievers WHERE status = 'active'").fetchone()
    return load(conn, row[0], row[1]) if row else None


def activate(conn: psycopg.Connection, version: int) -> None:
    """Make ``version`` the one in use; the one in use before is retired (rollback brings it back)."""
    with conn.transaction():
        if conn.execute("SELECT 1 FROM retrievers WHERE id = %s", (version,)).fetchone() is None:
            raise LearnError(f"no learned retriever version {version}")
        conn.execute("UPDATE retrievers SET status = 'retired', retired_at = now() WHERE status = 'active'")
        conn.execute("UPDATE retrievers SET status = 'active', activated_at = now(), retired_at = NULL "
                     "WHERE id = %s", (version,))


def rollback(conn: psycopg.Connection) -> int | None:
    """Return to the version active before the current one (or to the base model when there was none); return
    the version now in use. Immediate: the next search anywhere uses it."""
    with conn.transaction():
        current = conn.execute("SELECT id, activated_at FROM retrievers WHERE status = 'active' FOR UPDATE").fetchone()
        if current is None:
            raise LearnError("no learned retriever is active; nothing to roll back")
        previous = conn.execute(
            "SELECT id FROM retrievers WHERE status = 'retired' AND activated_at < %s "
            "ORDER BY activated_at DESC LIMIT 1", (current[1],)).fetchone()
        conn.execute("UPDATE retrievers SET status = 'rejected', retired_at = now() WHERE id = %s", (current[0],))
        if previous is None:
            return None
        conn.execute("UPDATE retrievers SET status = 'active', activated_at = now(), retired_at = NULL "
                     "WHERE id = %s", (previous[0],))
        return int(previous[0])


def versions(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT id, kind, status, created_at, activated_at, training, metrics FROM retrievers "
                        "ORDER BY id").fetchall()
    return [{"version": r[0], "kind": r[1], "status": r[2], "created_at": r[3].isoformat(),
             "activated_at": r[4].isoformat() if r[4] else None, "training": r[5], "metrics": r[6]} for r in rows]


class AdaptedQueries:
    """An embedder whose query embeddings pass through an adapter; passages (``embed_batch``) are unchanged, so
    the stored index serves every version."""

    def __init__(self, inner: Any, adapter: Adapter) -> None:
        self.inner = inner
        self.adapter = adapter
        self.name = inner.name
        self.dim = inner.dim
        self.base: np.ndarray | None = None

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_batch(texts)

    def embed_query(self, text: str) -> np.ndarray:
        from retrieval.embed import embed_query

        # the base vector is kept for the memory of ratings, which compares questions in the base model's space
        self.base = embed_query(self.inner, text)
        return self.adapter.apply(self.base)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def adapted(embedder: Any, adapter: Adapter | None) -> Any:
    return embedder if adapter is None else AdaptedQueries(embedder, adapter)
