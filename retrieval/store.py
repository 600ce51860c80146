"""Writing and deleting documents and chunks. Each batch is one transaction: a document is whole or absent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql
from psycopg.types.json import Jsonb

from core.settings import SearchSettings
from retrieval import injections, keywords
from retrieval.embed import Embedder, passage_text
from retrieval.filters import Scope, compile_filters
from retrieval.types import Chunk, Document, content_hash

_LOCK_MODEL = 8317002
_LOCK_REWEIGHT = 8317004


def _metadata_json(metadata: dict) -> str:
    """Metadata as stored: dates and other non-JSON values as their text, on documents and chunks alike."""
    return json.dumps(metadata, default=str)


class ModelMismatchError(RuntimeError):
    """The stored embeddings come from another model than the configured one."""


@dataclass(frozen=True)
class PreparedDocument:
    """A document with its chunks, embedded inputs and PII counts, ready to write."""

    document: Document
    chunks: list[Chunk]
    pii_counts: dict[str, int]


def ensure_model(conn: psycopg.Connection, name: str, dim: int) -> None:
    """Record the embedding model on first use (typing the column, building HNSW); refuse a different one."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_MODEL,))
        row = conn.execute("SELECT model, dim FROM embedding_config").fetchone()
        if row is None:
            conn.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE halfvec({int(dim)})")
            conn.execute(
                "CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON chunks "
                "USING hnsw (embedding halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            conn.execute("INSERT INTO embedding_config (model, dim) VALUES (%s, %s)", (name, dim))
        elif (row[0], row[1]) != (name, dim):
            raise ModelMismatchError(
                f"the database holds embeddings from {row[0]} ({row[1]} dimensions) but the configured model "
                f"is {name} ({dim} dimensions). Run `citewise reindex` to re-embed everything with the "
                "configured model, or set CITEWISE_EMBEDDING_MODEL back to the stored one."
            )


def stored_model(conn: psycopg.Connection) -> tuple[str, int] | None:
    row = conn.execute("SELECT model, dim FROM embedding_config").fetchone()
    return (row[0], row[1]) if row else None


def check_model(conn: psycopg.Connection, name: str, dim: int) -> None:
    """Refuse to search with another model than the one the stored embeddings came from."""
    stored = stored_model(conn)
    if stored and stored != (name, dim):
        raise ModelMismatchError(
            f"the database holds embeddings from {stored[0]} ({stored[1]} dimensions) but the configured model is "
            f"{name} ({dim} dimensions). Run `citewise reindex` to re-embed everything with the configured model, "
            "or set CITEWISE_EMBEDDING_MODEL back to the stored one.")


def source_names(conn: psycopg.Connection) -> list[str]:
    """The sources present, for a UI's filter choices."""
    return [r[0] for r in conn.execute("SELECT DISTINCT source FROM documents ORDER BY source")]


def corpus_summary(conn: psycopg.Connection, scope: Scope) -> list[tuple[str, int, datetime | None]]:
    """Per source a reader in ``scope`` may read: its documents and when the newest was updated; for a door's
    welcome ("what can I ask about?")."""
    where, params = compile_filters([], scope)
    query = sql.SQL("SELECT d.source, count(*), max(COALESCE(d.updated_at, d.created_at)) FROM documents d "
                    "WHERE {} GROUP BY d.source ORDER BY count(*) DESC, d.source").format(where)
    return [(r[0], int(r[1]), r[2]) for r in conn.execute(query, params)]


def existing_ids(conn: psycopg.Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The stored document id for each (source, uri) key that exists."""
    keys = list(keys)
    if not keys:
        return {}
    rows = conn.execute(
        "SELECT d.source, d.uri, d.id FROM documents d "
        "JOIN unnest(%s::text[], %s::text[]) AS k(source, uri) ON d.source = k.source AND d.uri = k.uri",
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall()
    return {(s, u): i for s, u, i in rows}


def average_length(conn: psycopg.Connection) -> float | None:
    n, total = conn.execute("SELECT n_chunks, total_len FROM keyword_stats").fetchone()
    return total / n if n else None


def reusable_embeddings(conn: psycopg.Connection, hashes: list[str]) -> dict[str, np.ndarray]:
    """Embeddings already stored for identical model inputs, so a changed document re-embeds only what changed."""
    if not hashes:
        return {}
    rows = conn.execute(
        "SELECT DISTINCT ON (text_hash) text_hash, embedding FROM chunks WHERE text_hash = ANY(%s)", (hashes,)
    ).fetchall()
    return {h: e.to_numpy().astype(np.float32) for h, e in rows}


def embed_inputs(prepared: list[PreparedDocument]) -> list[str]:
    return [passage_text(p.document.title, c.heading_path, c.text) for p in prepared for c in p.chunks]


def write(
    conn: psycopg.Connection,
    prepared: list[PreparedDocument],
    embeddings: np.ndarray,
    search: SearchSettings,
    avgdl: float,
) -> None:
    """Replace each document's previous version (same source and uri) and insert it with its chunks, atomically."""
    inputs = embed_inputs(prepared)
    with conn.transaction():
        for p in prepared:
            d = p.document
            conn.execute("DELETE FROM documents WHERE source = %s AND uri = %s AND id <> %s",
                         (d.source, d.uri, d.id))
            conn.execute(
                "INSERT INTO documents (id, source, uri, title, author, created_at, updated_at, access_groups, "
                "metadata, char_count, pii_counts) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING",
                (d.id, d.source, d.uri, d.title, d.author, d.created_at, d.updated_at, list(d.groups),
                 _metadata_json(d.metadata), len(d.text), json.dumps(p.pii_counts)),
            )
        with conn.cursor().copy(
            "COPY chunks (id, document_id, ordinal, text, text_hash, token_count, char_start, char_end, "
            "heading_path, embedding, keyword_terms, keyword_len, keyword_vec, instructions, keyword_avgdl, "
            "source, uri, author, created_at, updated_at, access_groups, metadata) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "int4", "text", "text", "int4", "int4", "int4", "text[]", "halfvec",
                            "int4[]", "int4", "sparsevec", "text[]", "float4",
                            "text", "text", "text", "timestamptz", "timestamptz", "text[]", "jsonb"])
            i = 0
            for p in prepared:
                d = p.document
                # the document's filterable fields, copied so filtered searches test the chunk row alone
                copied = (d.source, d.uri, d.author, d.created_at, d.updated_at, list(d.groups),
                          Jsonb(d.metadata, dumps=_metadata_json))
                for c in p.chunks:
                    kv = keywords.document_vector(inputs[i], avgdl, search.bm25_k1, search.bm25_b)
                    copy.write_row((c.id, c.document_id, c.ordinal, c.text, content_hash(inputs[i]),
                                    c.token_count, c.start, c.end, list(c.heading_path),
                                    HalfVector(embeddings[i]), kv.term_ids, kv.length, kv.vector, list(c.instructions),
                                    avgdl, *copied))
                    i += 1


def reweight(conn: psycopg.Connection, search: SearchSettings, batch: int = 2000) -> int:
    """Keep BM25 BM25 as the corpus changes: recompute the weights of chunks written with an average chunk length
    further than ``search.bm25_reweight_drift`` (a share) from today's; return how many were rewritten.

    A chunk's stored weights fold in the average length of the moment they were written (the sparse inner product
    cannot divide by a moving average at query time), so they drift as documents come and go. Rewriting only
    the drifted chunks keeps every score within the bound of a direct BM25 computation, and costs nothing while
    the average holds still, which it does more and more as a corpus grows. One transaction per batch, so a
    large corpus is never locked at once; the rows' terms are unchanged, so document frequencies stay exact.
    """
    avgdl = average_length(conn)
    if avgdl is None:
        return 0
    drift = search.bm25_reweight_drift
    rows = conn.execute(
        "SELECT c.id, d.title, c.heading_path, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE c.keyword_avgdl IS NULL OR abs(c.keyword_avgdl - %s) > %s * %s ORDER BY c.id",
        (avgdl, drift, avgdl)).fetchall()
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_REWEIGHT,))  # two workers: one at a time
            conn.execute("CREATE TEMP TABLE reweighted (id text, keyword_vec sparsevec) ON COMMIT DROP")
            with conn.cursor().copy("COPY reweighted FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["text", "sparsevec"])
                for cid, title, headings, text in part:
                    kv = keywords.document_vector(passage_text(title, tuple(headings), text), avgdl,
                                                  search.bm25_k1, search.bm25_b)
                    copy.write_row((cid, kv.vector))
            conn.execute("UPDATE chunks c SET keyword_vec = r.keyword_vec, keyword_avgdl = %s "
                         "FROM reweighted r WHERE r.id = c.id", (avgdl,))
    return len(rows)


def delete(conn: psycopg.Connection, *, source: str | None = None, document_id: str | None = None) -> int:
    """Delete documents (and, by cascade, their chunks) by source or id, and scrub their passages from stored
    answers, in one transaction; return how many were removed. A legal hold on the source blocks it."""
    from core.privacy import check_source_hold, scrub_documents

    if (source is None) == (document_id is None):
        raise ValueError("give exactly one of source or document_id")
    with conn.transaction():
        if source is not None:
            check_source_hold(conn, source)
            ids = [r[0] for r in conn.execute("DELETE FROM documents WHERE source = %s RETURNING id", (source,))]
        else:
            held = conn.execute("SELECT source FROM documents WHERE id = %s", (document_id,)).fetchone()
            if held:
                check_source_hold(conn, held[0])
            ids = [r[0] for r in conn.execute("DELETE FROM documents WHERE id = %s RETURNING id", (document_id,))]
        scrub_documents(conn, ids)
        return len(ids)


def reindex(
    conn: psycopg.Connection,
    embedder: Embedder,
    search: SearchSettings,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Re-embed every chunk with ``embedder``, recompute BM25 weights and re-flag text addressed to the assistant,
    in one transaction; return the count.

    One transaction means a crash leaves the old index intact; the cost is that ingests wait until it ends.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_MODEL,))
        conn.execute("LOCK TABLE chunks IN SHARE ROW EXCLUSIVE MODE")
        rows = conn.execute(
            "SELECT c.id, d.title, c.heading_path, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
            "ORDER BY c.id"
        ).fetchall()
        avgdl = average_length(conn) or 1.0
        conn.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
        conn.execute(f"ALTER TABLE chunks ADD COLUMN embedding_new halfvec({int(embedder.dim)})")
        conn.execute("CREATE TEMP TABLE reindexed (id text, embedding halfvec, keyword_terms int4[], "
                     "keyword_len int4, keyword_vec sparsevec, text_hash text, instructions text[]) ON COMMIT DROP")
        batch = 256
        for start in range(0, len(rows), batch):
            part = rows[start:start + batch]
            inputs = [passage_text(t, tuple(h), x) for _, t, h, x in part]
            vectors = embedder.embed_batch(inputs)
            with conn.cursor().copy("COPY reindexed FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["text", "halfvec", "int4[]", "int4", "sparsevec", "text", "text[]"])
                for (cid, _, _, text), inp, vec in zip(part, inputs, vectors, strict=True):
                    kv = keywords.document_vector(inp, avgdl, search.bm25_k1, search.bm25_b)
                    copy.write_row((cid, HalfVector(vec), kv.term_ids, kv.length, kv.vector, content_hash(inp),
                                    list(injections.find(text).sentences)))
            if on_progress:
                on_progress(min(start + batch, len(rows)), len(rows))
        conn.execute(
            "UPDATE chunks c SET embedding_new = r.embedding, keyword_terms = r.keyword_terms, "
            "keyword_len = r.keyword_len, keyword_vec = r.keyword_vec, text_hash = r.text_hash, "
            "instructions = r.instructions, keyword_avgdl = %s "
            "FROM reindexed r WHERE r.id = c.id", (avgdl,)
        )
        conn.execute("ALTER TABLE chunks DROP COLUMN embedding")
        conn.execute("ALTER TABLE chunks RENAME COLUMN embedding_new TO embedding")
        conn.execute("ALTER TABLE chunks ALTER COLUMN embedding SET NOT NULL")
        conn.execute(
            "CREATE INDEX chunks_embedding_hnsw ON chunks "
            "USING hnsw (embedding halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        conn.execute("DELETE FROM embedding_config")
        conn.execute("INSERT INTO embedding_config (model, dim) VALUES (%s, %s)", (embedder.name, embedder.dim))
        return len(rows)
