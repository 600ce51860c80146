"""Retrievers learned from feedback: a query-side linear adapter over the embedding, versioned in the database.

The adapter maps a query's embedding ``q`` to ``normalise(W q)``; passages keep their stored vectors, so a new
version needs no re-index and takes effect on the next search. ``W`` starts at the identity and is trained with a
contrastive loss (the positive passage against the query's negatives and the batch's other passages) plus a
penalty on ``||W - I||²``, which keeps it close to the base model: it can only re-weight directions the base model
already has, so it cannot forget what it was not taught (checked on XQuAD by the proof in ``evals/learn_proof``).

Versions live in ``retrievers`` (migration 0012). At most one is active; :func:`rollback` re-activates the one
before it at once, and every turn records the version its search used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

KIND = "query-adapter"


class LearnError(ValueError):
    """Learning cannot proceed (too little feedback, unknown version); the message says what to do."""


@dataclass(frozen=True)
class Pair:
    """One training example: a question, a passage that answered it, passages that did not (by chunk id)."""

    question: str
    positive: str
    negatives: tuple[str, ...]
    turn_id: str


@dataclass(frozen=True)
class Adapter:
    version: int
    base_model: str
    weights: np.ndarray  # dim x dim, float32

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Adapted, re-normalised query vectors (one or a batch)."""
        out = np.asarray(vectors, dtype=np.float32) @ self.weights.T
        norms = np.linalg.norm(out, axis=-1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 60
    learning_rate: float = 0.01
    temperature: float = 0.05  # the contrastive softmax's temperature (cosine similarities / t)
    # strength of the pull back to the identity map; chosen on SciFact's tune half (evals/learn_proof.choose: 1.0,
    # 0.1, 0.01, 0.001 tried; held-out nDCG@10 0.880, 0.898, 0.909, 0.923)
    identity_weight: float = 0.001
    seed: int = 0


def train(queries: np.ndarray, positives: np.ndarray, negatives: list[np.ndarray],
          cfg: TrainSettings = TrainSettings()) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit ``W`` (dim x dim) on query vectors, their positive passage vectors and each query's negative passage
    vectors (any number, possibly none). Full-batch Adam on two cores: seconds for a few thousand pairs."""
    import torch

    torch.manual_seed(cfg.seed)
    dim = queries.shape[1]
    q = torch.tensor(queries, dtype=torch.float32)
    p = torch.tensor(positives, dtype=torch.float32)
    width = max((len(n) for n in negatives), default=0)
    neg = torch.zeros((len(negatives), max(width, 1), dim))
    mask = torch.zeros((len(negatives), max(width, 1)), dtype=torch.bool)
    for i, n in enumerate(negatives):
        if len(n):
            neg[i, :len(n)] = torch.tensor(n, dtype=torch.float32)
            mask[i, :len(n)] = True
    eye = torch.eye(dim)
    w = torch.nn.Parameter(eye.clone())
    opt = torch.optim.Adam([w], lr=cfg.learning_rate)
    started = time.perf_counter()
    losses = []
    for _ in range(cfg.epochs):
        opt.zero_grad()
        a = torch.nn.functional.normalize(q @ w.T, dim=-1)
        in_batch = a @ p.T / cfg.temperature  # every other query's positive is a negative too
        hard = torch.einsum("bd,bnd->bn", a, neg) / cfg.temperature
        hard = hard.masked_fill(~mask, float("-inf"))
        logits = torch.cat([in_batch, hard], dim=1)
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(q)))
        loss = loss + cfg.identity_weight * ((w - eye) ** 2).sum()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    weights = w.detach().numpy().astype(np.float32)
    return weights, {"pairs": len(q), "epochs": cfg.epochs, "learning_rate": cfg.learning_rate,
                     "temperature": cfg.temperature, "identity_weight": cfg.identity_weight,
                     "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
                     "distance_from_identity": round(float(np.linalg.norm(weights - np.eye(dim))), 4),
                     "seconds": round(time.perf_counter() - started, 2)}


def save(conn: psycopg.Connection, base_model: str, weights: np.ndarray, training: dict, metrics: dict,
         status: str = "candidate") -> int:
    row = conn.execute(
        "INSERT INTO retrievers (kind, base_model, dim, weights, training, metrics, status) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (KIND, base_model, weights.shape[0], weights.astype(np.float32).tobytes(), Jsonb(training),
         Jsonb(metrics), status)).fetchone()
    return int(row[0])


_CACHE: dict[int, Adapter] = {}


def load(conn: psycopg.Connection, version: int) -> Adapter:
    """A stored version (cached by id: a version's weights never change)."""
    if version not in _CACHE:
        row = conn.execute("SELECT base_model, dim, weights FROM retrievers WHERE id = %s", (version,)).fetchone()
        if row is None:
            raise LearnError(f"no learned retriever version {version}; `citewise learn --status` lists them")
        base, dim, blob = row
        _CACHE[version] = Adapter(version, base, np.frombuffer(blob, dtype=np.float32).reshape(dim, dim).copy())
    return _CACHE[version]


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
    row = conn.execute("SELECT id FROM retrievers WHERE status = 'active'").fetchone()
    return load(conn, row[0]) if row else None


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

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_batch(texts)

    def embed_query(self, text: str) -> np.ndarray:
        from retrieval.embed import embed_query

        return self.adapter.apply(embed_query(self.inner, text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def adapted(embedder: Any, adapter: Adapter | None) -> Any:
    return embedder if adapter is None else AdaptedQueries(embedder, adapter)
