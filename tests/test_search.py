from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from core.settings import SearchSettings
from retrieval import filters, keywords, store
from retrieval.filters import EVERYTHING
from retrieval.search import search, search_vector
from retrieval.store import PreparedDocument
from retrieval.types import Chunk, Document
from tests.corpus import documents, store_documents


@pytest.fixture
def loaded(conn, embedder, settings):
    extra = [
        Document(source="wiki", uri="zx.md", title="Router ZX-4411",
                 text="# Router ZX-4411\n\nThe ZX-4411 router resets when you hold the button for ten seconds."),
        Document(source="wiki", uri="reset.md", title="Resetting network devices",
                 text="# Resetting devices\n\nTo restore factory settings on a network appliance, power-cycle it."),
    ]
    store_documents(conn, embedder, settings, documents() + extra)
    return conn


def test_hybrid_ranks_a_passage_found_by_both_sides_first(loaded, embedder) -> None:
    hits = search(loaded, embedder, "how do I reset the ZX-4411", scope=EVERYTHING, k=5)
    top = hits[0]
    assert top.uri == "zx.md"
    assert top.vector_rank is not None and top.keyword_rank == 1
    assert top.score == pytest.approx(1 / (60 + top.vector_rank) + 1 / (60 + top.keyword_rank))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_modes_use_only_their_side(loaded, embedder) -> None:
    vec = search(loaded, embedder, "factory settings of an appliance", scope=EVERYTHING, k=3, mode="vector")
    kw = search(loaded, embedder, "factory settings of an appliance", scope=EVERYTHING, k=3, mode="keyword")
    assert all(h.keyword_rank is None and h.vector_rank is not None for h in vec)
    assert all(h.vector_rank is None and h.keyword_rank is not None for h in kw)
    assert kw[0].uri == "reset.md"
    assert [h.vector_rank for h in vec] == [1, 2, 3]


def test_keyword_score_is_bm25(loaded, settings) -> None:
    """The SQL inner product equals a direct BM25 computation over the stored chunks."""
    cfg: SearchSettings = settings.search
    rows = loaded.execute("SELECT c.id, d.title, c.heading_path, c.text, c.keyword_len FROM chunks c "
                          "JOIN documents d ON d.id = c.document_id").fetchall()
    from retrieval.embed import passage_text

    docs = {cid: Counter(keywords.terms(passage_text(t, tuple(h), x))) for cid, t, h, x, _ in rows}
    n, total = loaded.execute("SELECT n_chunks, total_len FROM keyword_stats").fetchone()
    avgdl_at_write = np.mean([sum(c.values()) for c in docs.values()])  # one batch: stats were empty
    query = "employees vacation days carry over"
    q_terms = set(keywords.terms(query))
    expected = {}
    for cid, tf in docs.items():
        dl = sum(tf.values())
        score = 0.0
        for t in q_terms:
            df = sum(1 for c in docs.values() if t in c)
            if tf[t] and df:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += idf * tf[t] * (cfg.bm25_k1 + 1) / (
                    tf[t] + cfg.bm25_k1 * (1 - cfg.bm25_b + cfg.bm25_b * dl / avgdl_at_write))
        if score:
            expected[cid] = score
    hits = search_vector(loaded, query, np.zeros(384, dtype=np.float32), scope=EVERYTHING, k=10, mode="keyword")
    got = {h.chunk_id: h.keyword_score for h in hits}
    assert set(got) == set(expected)
    for cid, score in expected.items():
        assert got[cid] == pytest.approx(score, rel=1e-3)
    assert total == sum(sum(c.values()) for c in docs.values())


def test_filters_apply_inside_search(loaded, embedder) -> None:
    hits = search(loaded, embedder, "policy", scope=EVERYTHING, k=10,
                  filters=filters.parse_all(["source=wiki", "groups=eng"]))
    assert {h.uri for h in hits} == {"deploy.md", "oncall.md"}
    old = filters.parse_all(["created<1990-01-01"])
    assert search(loaded, embedder, "policy", scope=EVERYTHING, k=10, filters=old) == []


def test_query_without_known_terms_still_gets_vector_hits(loaded, embedder) -> None:
    hits = search(loaded, embedder, "zyxwvut qqqq", scope=EVERYTHING, k=3)
    assert len(hits) == 3 and all(h.keyword_rank is None for h in hits)


def test_empty_query_and_bad_mode_are_refused(loaded, embedder) -> None:
    with pytest.raises(ValueError, match="empty"):
        search(loaded, embedder, "   ", scope=EVERYTHING)
    with pytest.raises(ValueError, match="unknown search mode"):
        search(loaded, embedder, "x", scope=EVERYTHING, mode="fuzzy")  # type: ignore[arg-type]


def _bulk_corpus(conn, embedder, settings, n_docs: int, rare_every: int) -> None:
    """Many one-chunk documents: real embeddings of 40 texts, jittered; every ``rare_every``-th is source=rare."""
    base_texts = [f"Topic {i}: notes about subject number {i} and its many details." for i in range(40)]
    base = embedder.embed_batch(base_texts)
    rng = np.random.default_rng(7)
    store.ensure_model(conn, embedder.name, embedder.dim)
    prepared, vectors = [], []
    for i in range(n_docs):
        text = base_texts[i % 40] + f" Item {i}."
        bucket = "rare" if i % rare_every == 0 else "common"
        d = Document(source=bucket, uri=f"doc{i}", text=text, title="", metadata={"bucket": bucket})
        prepared.append(PreparedDocument(d, [Chunk(d.id, 0, text, 20, 0, len(text))], {}))
        v = base[i % 40] + rng.normal(0, 0.05, base.shape[1])
        vectors.append(v / np.linalg.norm(v))
    store.write(conn, prepared, np.array(vectors, dtype=np.float32), settings.search, 12.0)


def test_filtered_search_is_never_short_when_matches_exist(conn, embedder, settings) -> None:
    _bulk_corpus(conn, embedder, settings, n_docs=3000, rare_every=100)  # 30 rare documents
    query_text = "notes about subject number 3"
    query = embedder.embed_batch([query_text])[0]
    cfg = SearchSettings(candidates=20, ef_search=20)
    for exprs in (["source=rare"], ["meta.bucket=rare"]):
        for mode in ("vector", "hybrid"):
            hits = search_vector(conn, query_text, query, scope=EVERYTHING, k=20,
                                 filters=filters.parse_all(exprs), mode=mode, cfg=cfg)
            assert len(hits) == 20, (exprs, mode)
            assert {h.source for h in hits} == {"rare"}
    # Force the plan large tables get (HNSW order, filter applied after): plain post-filtering comes up short,
    # citewise's search does not.
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_nestloop", "enable_hashjoin", "enable_mergejoin",
                    "enable_sort"):
        conn.execute(f"SET {setting} = off")
    from pgvector import HalfVector

    with conn.transaction():
        conn.execute("SET LOCAL hnsw.ef_search = 20")
        conn.execute("SET LOCAL hnsw.iterative_scan = off")
        plain_sql = ("SELECT c.id FROM chunks c WHERE c.document_id IN (SELECT d.id FROM documents d "
                     "WHERE d.metadata->>'bucket' = 'rare') ORDER BY c.embedding <=> %s LIMIT 20")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + plain_sql, (HalfVector(query),)))
        assert "chunks_embedding_hnsw" in plan
        plain = conn.execute(plain_sql, (HalfVector(query),)).fetchall()
    assert len(plain) < 20
    hits = search_vector(conn, query_text, query, scope=EVERYTHING, k=20,
                         filters=filters.parse_all(["meta.bucket=rare"]),
                         mode="vector", cfg=cfg)
    assert len(hits) == 20 and {h.source for h in hits} == {"rare"}


def test_every_search_needs_a_scope(loaded, embedder) -> None:
    """Access control cannot be forgotten: no search entry point has a default scope."""
    with pytest.raises(TypeError, match="scope"):
        search(loaded, embedder, "policy", k=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="scope"):
        search_vector(loaded, "policy", np.zeros(384, dtype=np.float32), k=3)  # type: ignore[call-arg]
    scoped = search(loaded, embedder, "policy", scope=filters.Scope(("nobody-has-this",), public_ungrouped=False),
                    k=10)
    assert scoped == [], "a scope with no readable documents finds nothing"
