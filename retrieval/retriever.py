"""A LangChain retriever over :func:`retrieval.search.timed_search`, with the user's filters applied in SQL."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from core.settings import SearchSettings
from retrieval.filters import Filter, Scope
from retrieval.search import Mode, timed_search
from retrieval.types import Hit


def to_lc(hit: Hit) -> LCDocument:
    return LCDocument(page_content=hit.text, id=hit.chunk_id,
                      metadata={"hit": hit, "title": hit.title, "source": hit.source, "uri": hit.uri,
                                "document_id": hit.document_id, "score": hit.score})


def from_lc(doc: LCDocument) -> Hit:
    return doc.metadata["hit"]


class CitewiseRetriever(BaseRetriever):
    """Hybrid search as a LangChain retriever. ``timings`` collects embed/search milliseconds of the last call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    conn: Any
    embedder: Any
    scope: Scope
    filters: list[Filter] = Field(default_factory=list)
    k: int = 50
    mode: Mode = "hybrid"
    search: SearchSettings = Field(default_factory=SearchSettings)
    timings: dict[str, float] = Field(default_factory=dict)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        hits, t = timed_search(self.conn, self.embedder, query, scope=self.scope, k=self.k, filters=self.filters,
                               mode=self.mode, cfg=self.search)
        self.timings.update(embed_ms=t.embed_ms, search_ms=t.search_ms)
        return [to_lc(h) for h in hits]
