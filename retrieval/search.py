"""Hybrid search: HNSW vector ranking and BM25 keyword ranking fused by reciprocal rank, in one SQL statement.

Both sides apply the same filter inside the statement, on the chunk rows themselves (each chunk carries copies
of its document's filterable fields): the HNSW iterative scan tests each candidate as it walks the graph, and a
filter too selective for that is served by the filter columns' own indexes and ranked exactly. A mode only changes
how many candidates each side may return (zero switches a side off), so vector, keyword and hybrid share one code path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql

from core.settings import SearchSettings
from retrieval import keywords
from retrieval.embed import Embedder, embed_query
from retrieval.filters import Filter, Scope, compile_filters
from retrieval.types import Hit

Mode = Literal["vector", "keyword", "hybrid"]
MODES: tuple[Mode, ...] = ("vector", "keyword", "hybrid")

_QUERY = """
WITH q AS (
    -- IDF on the query side: ln(1 + (N - df + 0.5) / (df + 0.5)) per query term, as a sparse vector.
    SELECT ('{{' || string_agg(k.term_id || ':' ||
                ln(1 + (s.n_chunks - k.df + 0.5) / (k.df + 0.5)), ',' ORDER BY k.term_id)
            || '}}/' || %(dim)s)::sparsevec AS vec
    FROM keyword_df k CROSS JOIN keyword_stats s
    WHERE k.term_id = ANY(%(terms)s::int4[]) AND k.df > 0
),
probe AS (
    -- Candidate terms, rarest first, while their postings fit the budget (the rarest always): chunks holding
    -- only very common terms score too low to matter, and skipping them keeps large corpora fast (MaxScore's idea).
    SELECT array_agg(term_id) AS terms FROM (
        SELECT term_id, df, sum(df) OVER (ORDER BY df, term_id) AS cum, row_number() OVER (ORDER BY df, term_id) AS rn
        FROM keyword_df WHERE term_id = ANY(%(terms)s::int4[]) AND df > 0
    ) t WHERE rn = 1 OR cum <= %(postings)s
),
vec AS (
    SELECT c.id, row_number() OVER (ORDER BY c.embedding <=> %(qvec)s) AS rank,
           1 - (c.embedding <=> %(qvec)s) AS similarity
    FROM chunks c
    WHERE {filter}
    ORDER BY c.embedding <=> %(qvec)s
    LIMIT %(n_vector)s
),
kw AS (
    -- the inner query keeps only (id, score) through its top-n sort, so the sort stays a small in-memory heap
    -- however many postings match (carrying whole rows made it spill to disk at 200k chunks)
    SELECT s.id, row_number() OVER (ORDER BY s.d) AS rank, -s.d AS score FROM (
        SELECT c.id, c.keyword_vec <#> q.vec AS d
        FROM chunks c CROSS JOIN q
        WHERE q.vec IS NOT NULL AND c.keyword_terms && (SELECT terms FROM probe) AND {filter}
        ORDER BY d
        LIMIT %(n_keyword)s
    ) s
),
fused AS (
    SELECT coalesce(vec.id, kw.id) AS id, vec.rank AS vector_rank, kw.rank AS keyword_rank,
           vec.similarity, kw.score AS keyword_score,
           coalesce(%(w_vector)s / (%(rrf_k)s + vec.rank), 0.0)
             + coalesce(%(w_keyword)s / (%(rrf_k)s + kw.rank), 0.0) AS score
    FROM vec FULL OUTER JOIN kw ON vec.id = kw.id
)
SELECT f.id, c.document_id, c.text, d.title, d.source, d.uri, c.heading_path, c.char_start, c.char_end,
       f.score, f.vector_rank, f.keyword_rank,
       -- both raw scores for every fused candidate, also from the side that did not retrieve it (for re-ranking)
       CASE WHEN %(n_vector)s > 0 THEN coalesce(f.similarity, 1 - (c.embedding <=> %(qvec)s)) END,
       coalesce(f.keyword_score, -(c.keyword_vec <#> (SELECT vec FROM q)), 0.0),
       d.author, d.created_at, d.updated_at, c.ordinal, c.instructions
FROM fused f JOIN chunks c ON c.id = f.id JOIN documents d ON d.id = c.document_id
ORDER BY f.score DESC, f.vector_rank NULLS LAST, f.keyword_rank NULLS LAST, f.id
LIMIT %(k)s
"""


@dataclass(frozen=True)
class SearchTimings:
    embed_ms: float
    search_ms: float


def _statement(filters: list[Filter], scope: Scope) -> tuple[sql.Composable, dict]:
    predicate, params = compile_filters(filters, scope, table="c")
    return sql.SQL(_QUERY).format(filter=predicate), params


def _matching(conn: psycopg.Connection, filters: list[Filter], scope: Scope, cap: int) -> int:
    """How many chunks the filter and scope let through, counted up to ``cap`` (through the filter columns'
    indexes when selective, stopping at ``cap`` when not): a few milliseconds that choose the plan."""
    predicate, params = compile_filters(filters, scope, table="c")
    params["cap"] = cap
    query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM chunks c WHERE {} LIMIT %(cap)s) s").format(predicate)
    return int(conn.execute(query, params).fetchone()[0])


def search_vector(
    conn: psycopg.Connection,
    query: str,
    query_vector: np.ndarray,
    *,
    scope: Scope,
    k: int = 10,
    filters: list[Filter] | None = None,
    mode: Mode = "hybrid",
    cfg: SearchSettings | None = None,
    candidates: int | None = None,
    exact: bool = False,
) -> list[Hit]:
    """Search with an already embedded query (the evals and benchmarks embed in batches). ``scope`` is the
    caller's access (``retrieval.filters.EVERYTHING`` for the operator): required, so no caller forgets it."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; expected one of {', '.join(MODES)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    cfg = cfg or SearchSettings()
    filters = filters or []
    n = max(candidates or cfg.candidates, k)
    statement, params = _statement(filters, scope)
    params.update(
        dim=keywords.DIM, terms=keywords.query_terms(query), qvec=HalfVector(query_vector),
        n_vector=n if mode != "keyword" else 0, n_keyword=n if mode != "vector" else 0,
        w_vector=cfg.vector_weight, w_keyword=cfg.keyword_weight, rrf_k=cfg.rrf_k, k=k,
        postings=cfg.keyword_postings,
    )
    restricted = bool(filters) or not scope.everything
    with conn.transaction():
        if restricted and not exact and mode != "keyword" and cfg.exact_filter_below:
            exact = _matching(conn, filters, scope, cfg.exact_filter_below) < cfg.exact_filter_below
        # ef_search never below the candidates asked for; iterative scans keep filtered searches from coming up
        # short (plain HNSW post-filters its ef_search candidates).
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(min(max(cfg.ef_search, n), 1000)),))
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
        if exact:
            conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
        rows = conn.execute(statement, params).fetchall()
        if restricted and len(rows) < k and not exact and mode != "keyword":
            # max_scan_tuples can stop an iterative scan before it finds enough matches under a very selective
            # filter; an exact scan over the (few) matching chunks is then both correct and cheap.
            conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
            rows = conn.execute(statement, params).fetchall()
    return [
        Hit(chunk_id=r[0], document_id=r[1], text=r[2], title=r[3], source=r[4], uri=r[5], heading_path=tuple(r[6]),
            start=r[7], end=r[8], score=float(r[9]), vector_rank=r[10], keyword_rank=r[11],
            vector_similarity=None if r[12] is None else float(r[12]),
            keyword_score=None if r[13] is None else float(r[13]),
            author=r[14], created_at=r[15], updated_at=r[16], ordinal=r[17],
            instructions=None if r[18] is None else tuple(r[18]))
        for r in rows
    ]


def search(
    conn: psycopg.Connection,
    embedder: Embedder,
    query: str,
    *,
    scope: Scope,
    k: int = 10,
    filters: list[Filter] | None = None,
    mode: Mode = "hybrid",
    cfg: SearchSettings | None = None,
    candidates: int | None = None,
) -> list[Hit]:
    """The one search entry point the CLI, the chat chain and the evals use."""
    hits, _ = timed_search(conn, embedder, query, scope=scope, k=k, filters=filters, mode=mode, cfg=cfg,
                           candidates=candidates)
    return hits


def timed_search(
    conn: psycopg.Connection,
    embedder: Embedder,
    query: str,
    *,
    scope: Scope,
    k: int = 10,
    filters: list[Filter] | None = None,
    mode: Mode = "hybrid",
    cfg: SearchSettings | None = None,
    candidates: int | None = None,
) -> tuple[list[Hit], SearchTimings]:
    """:func:`search` plus how long the query embedding and the SQL took (for turn records and benchmarks)."""
    if not query.strip():
        raise ValueError("the query is empty")
    t0 = time.perf_counter()
    vector = embed_query(embedder, query) if mode != "keyword" else np.zeros(embedder.dim, dtype=np.float32)
    t1 = time.perf_counter()
    hits = search_vector(conn, query, vector, scope=scope, k=k, filters=filters, mode=mode, cfg=cfg,
                         candidates=candidates)
    t2 = time.perf_counter()
    return hits, SearchTimings((t1 - t0) * 1000, (t2 - t1) * 1000)
