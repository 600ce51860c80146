"""Stage: retrieve. Hybrid search through the LangChain retriever, then re-ranking; within the caller's scope.

Shared with the eval replay, so a replayed turn is retrieved exactly as a live one. The database connection is
held only for the search itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from chat.engine.services import Services
from chat.types import RetrievedRecord
from retrieval import learned
from retrieval.adapter import rerank
from retrieval.filters import Filter, Scope
from retrieval.retriever import CitewiseRetriever, from_lc
from retrieval.types import Hit


@dataclass(frozen=True)
class Retrieved:
    query: str
    candidates: tuple[Hit, ...]  # fused hybrid candidates, best first
    reranked: tuple[Hit, ...]  # the re-ranked few, best first (twice the sources asked for)
    timings: dict[str, float]  # embed_ms, search_ms, rerank_ms
    retriever_version: int | None = None  # the learned query adapter the search used (None: the base model)

    @property
    def best_similarity(self) -> float | None:
        """The closest candidate's cosine similarity: the abstention gate's evidence."""
        return max((h.vector_similarity for h in self.candidates if h.vector_similarity is not None), default=None)

    def records(self) -> list[RetrievedRecord]:
        """Every candidate with its fused and re-ranked position, as a turn records them."""
        after = {h.chunk_id: (i + 1, h.score) for i, h in enumerate(self.reranked)}
        return [RetrievedRecord(h.chunk_id, h.document_id, i + 1, h.score, *after.get(h.chunk_id, (None, None)))
                for i, h in enumerate(self.candidates)]


def retrieve(services: Services, query: str, scope: Scope, filters: list[Filter], n_sources: int,
             use: learned.Adapter | str | None = "active") -> Retrieved:
    """``use``: the learned retriever version to search with: "active" (what users get), or a given one (the
    learning gate compares a candidate against the active one on the same questions), or None (the base model)."""
    cfg = services.settings
    with services.search_connection() as conn:
        # promoted or rolled back by any process: seen at the next search
        adapter = learned.active(conn) if use == "active" else use
        embedder = learned.adapted(services.embedder, adapter)
        retriever = CitewiseRetriever(conn=conn, embedder=embedder, scope=scope,
                                      filters=filters, k=cfg.rerank.fetch, search=cfg.search)
        candidates = [from_lc(d) for d in retriever.invoke(query)]
    timings = dict(retriever.timings)
    t = time.perf_counter()
    reranked = rerank(services.reranker, query, candidates, n_sources * 2, cfg.rerank.duplicate_jaccard, adapter,
                      getattr(embedder, "base", None))
    timings["rerank_ms"] = (time.perf_counter() - t) * 1000
    return Retrieved(query, tuple(candidates), tuple(reranked), timings, adapter.version if adapter else None)
