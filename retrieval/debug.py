"""Looking inside the embedding space: 2-D projections of chunk embeddings, and a chunk's or a text's neighbours.

Preprocessing problems show up here before they show up in metrics: boilerplate chunks cluster tightly across
sources, a source embedded with another model sits apart, near-identical chunks are each other's neighbours at
similarity ~1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from retrieval.embed import Embedder
from retrieval.filters import Filter, Scope, compile_filters


@dataclass(frozen=True)
class Neighbor:
    chunk_id: str
    similarity: float
    source: str
    title: str
    text: str


def load_embeddings(conn: psycopg.Connection, filters: list[Filter], limit: int, scope: Scope
                    ) -> tuple[np.ndarray, list[str]]:
    where, params = compile_filters(filters, scope)
    query = sql.SQL("SELECT c.embedding, d.source FROM chunks c JOIN documents d ON d.id = c.document_id "
                    "WHERE {} ORDER BY c.id LIMIT {}").format(where, sql.Literal(limit))
    rows = conn.execute(query, params).fetchall()
    if not rows:
        return np.zeros((0, 0), dtype=np.float32), []
    return np.stack([np.asarray(r[0].to_list(), dtype=np.float32) for r in rows]), [r[1] for r in rows]


def pca(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def tsne(x: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=min(30.0, max(2.0, (len(x) - 1) / 3)), init="pca",
                random_state=seed).fit_transform(x)


def plot(conn: psycopg.Connection, out: Path, filters: list[Filter], scope: Scope, limit: int = 5000,
         with_tsne: bool = True) -> dict[str, int]:
    """PCA (and t-SNE) of up to ``limit`` chunk embeddings coloured by source, side by side in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, sources = load_embeddings(conn, filters, limit, scope)
    if len(x) < 3:
        raise ValueError(f"{len(x)} chunks match; a projection needs at least 3 (ingest more or loosen --filter)")
    views = [("PCA", pca(x))] + ([("t-SNE", tsne(x))] if with_tsne else [])
    names = sorted(set(sources))
    fig, axes = plt.subplots(1, len(views), figsize=(6.5 * len(views), 6), squeeze=False)
    for ax, (title, points) in zip(axes[0], views, strict=True):
        for i, name in enumerate(names):
            mask = np.array([s == name for s in sources])
            ax.scatter(points[mask, 0], points[mask, 1], s=8, alpha=0.7, label=name, color=plt.cm.tab10(i % 10))
        ax.set_title(f"{title} of {len(x)} chunk embeddings")
    axes[0][0].legend(fontsize=8, markerscale=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return {name: sources.count(name) for name in names}


def neighbors(conn: psycopg.Connection, embedder: Embedder, text_or_chunk: str, scope: Scope,
              k: int = 10) -> list[Neighbor]:
    """The ``k`` nearest chunks the scope may read, by exact cosine similarity to a chunk (by id) or to a text.
    A chunk id outside the scope is treated as text, so its embedding cannot be probed either."""
    where, params = compile_filters([], scope)
    row = conn.execute(sql.SQL("SELECT c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id "
                               "WHERE c.id = %(chunk)s AND {}").format(where),
                       {**params, "chunk": text_or_chunk}).fetchone()
    vector = np.asarray(row[0].to_list(), dtype=np.float32) if row else embedder.embed_batch([text_or_chunk])[0]
    from pgvector import HalfVector

    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")  # exact distances: the point is to see the true neighbours
        rows = conn.execute(sql.SQL(
            "SELECT c.id, 1 - (c.embedding <=> %(v)s), d.source, d.title, c.text FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE {} ORDER BY c.embedding <=> %(v)s LIMIT %(k)s"
        ).format(where), {**params, "v": HalfVector(vector), "k": k}).fetchall()
    return [Neighbor(cid, float(sim), src, title, text) for cid, sim, src, title, text in rows]
