"""What the chain returns: an answer with its checked citations, sources and the turn it was recorded as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chat.sampling import Sampling
from retrieval.filters import Filter, Scope

ABSTAIN_TEXT = "The sources do not contain the answer."


@dataclass(frozen=True)
class Citation:
    number: int
    chunk_ids: tuple[str, ...]
    document_id: str
    title: str
    source: str
    uri: str
    start: int
    end: int
    text: str
    date: str | None = None  # the document's updated (else created) date, ISO 8601
    withheld: int = 0  # sentences of it addressed to the assistant: kept out of the prompt, marked where shown

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "chunk_ids": list(self.chunk_ids), "document_id": self.document_id,
                "title": self.title, "source": self.source, "uri": self.uri, "start": self.start, "end": self.end,
                "text": self.text, "date": self.date, "withheld": self.withheld}


@dataclass(frozen=True, kw_only=True)
class Question:
    """One question, validated by the front desk (chat.desk.frontdesk), with the asker's access scope resolved."""

    text: str
    conversation_id: str
    channel: str
    user_id: str | None
    scope: Scope  # which documents this asker may read; required, so no door forgets access control
    filters: list[Filter] = field(default_factory=list)
    sampling: Sampling = field(default_factory=Sampling)
    sources: int | None = None
    client_ref: str | None = None  # the caller's own id for this turn (UI run step, Slack message), for feedback
    history: tuple[tuple[str, str], ...] | None = None  # (question, answer) pairs the caller keeps (OpenAI API)


@dataclass(frozen=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    sources: tuple[Citation, ...]  # every numbered source the model saw (the closest ones when abstaining)
    abstained: bool
    turn_id: str | None
    standalone_question: str
    prompt_version: str | None
    model: str | None
    removed_markers: int = 0
    latency: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    auto_cited: int = 0  # markers added or corrected by the overlap check (chat.engine.citations.repair)
    abstain_reason: str | None = None  # why it abstained (chat.engine.verify, chat.engine.context.prepare)
    dropped: int = 0  # sentences left out because no source supports them
    # for evals and the turn record only, never sent to a door (to_json leaves them out): what the model wrote
    # before verification, and the sources its own markers named before repair
    model_output: str | None = None
    model_cited: tuple[int, ...] = ()
    retriever_version: int | None = None  # the learned retriever the search used; None: the base model
    best_similarity: float | None = None  # the closest candidate's cosine similarity (the abstention gate's evidence)

    def to_json(self) -> dict[str, Any]:
        return {"answer": self.text, "citations": [c.to_json() for c in self.citations],
                "sources": [c.to_json() for c in self.sources], "abstained": self.abstained,
                "turn_id": self.turn_id, "standalone_question": self.standalone_question,
                "prompt_version": self.prompt_version, "model": self.model, "removed_markers": self.removed_markers,
                "auto_cited": self.auto_cited, "abstain_reason": self.abstain_reason,
                "latency": self.latency}


@dataclass(frozen=True)
class RetrievedRecord:
    chunk_id: str
    document_id: str
    fused_rank: int
    fused_score: float
    rerank_rank: int | None
    rerank_score: float | None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()
