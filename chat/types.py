"""What the chain returns: an answer with its checked citations, sources and the turn it was recorded as."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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


# Each answer field says once where it goes: SHOWN fields are what every door may show (the API's JSON answer and
# its OpenAPI schema are derived from them, chat.api.schema); STORED fields are columns of the turn's row
# (chat.turns.record_turn), under the column name given. A field with neither is for evals and the caller only.
SHOWN, STORED = "shown", "stored"


def _f(*, shown: str | None = None, stored: str | None = None, **kw: Any) -> Any:
    return field(metadata={SHOWN: shown, STORED: stored}, **kw)


@dataclass(frozen=True, kw_only=True)
class Answer:
    text: str = _f(shown="answer", stored="answer")
    citations: tuple[Citation, ...] = _f(shown="citations", stored="citations")
    # every numbered source the model saw (the closest ones when abstaining)
    sources: tuple[Citation, ...] = _f(shown="sources")
    abstained: bool = _f(shown="abstained", stored="abstained")
    turn_id: str | None = _f(shown="turn_id")
    standalone_question: str = _f(shown="standalone_question", stored="standalone_question")
    prompt_version: str | None = _f(shown="prompt_version", stored="prompt_version")
    model: str | None = _f(shown="model", stored="model")
    removed_markers: int = _f(shown="removed_markers", stored="removed_markers", default=0)
    latency: dict[str, float] = _f(shown="latency", stored="latency", default_factory=dict)
    prompt_tokens: int | None = _f(stored="prompt_tokens", default=None)
    completion_tokens: int | None = _f(stored="completion_tokens", default=None)
    # markers added or corrected by the overlap check (chat.engine.citations.repair)
    auto_cited: int = _f(shown="auto_cited", stored="auto_cited", default=0)
    # why it abstained (chat.engine.verify, chat.engine.context)
    abstain_reason: str | None = _f(shown="abstain_reason", stored="abstain_reason", default=None)
    dropped: int = _f(default=0)  # sentences left out because no source supports them
    # what the model wrote before verification (stored, never shown), and the sources its own markers named
    model_output: str | None = _f(stored="model_output", default=None)
    model_cited: tuple[int, ...] = _f(default=())
    retriever_version: int | None = _f(stored="retriever_version", default=None)  # None: the base model
    best_similarity: float | None = _f(default=None)  # the closest candidate's cosine similarity

    def to_json(self) -> dict[str, Any]:
        """What a door may show: the SHOWN fields under their public names, citations as plain objects."""
        return {name: _plain(getattr(self, f.name)) for f, name in shown_fields()}

    def stored(self) -> dict[str, Any]:
        """The turn row's columns this answer fills (JSON columns as Python values; the store encodes them)."""
        return {f.metadata[STORED]: _plain(getattr(self, f.name)) for f in fields(self) if f.metadata[STORED]}


def shown_fields() -> list[tuple[Any, str]]:
    """(field, public name) of every SHOWN answer field, in declaration order."""
    return [(f, f.metadata[SHOWN]) for f in fields(Answer) if f.metadata[SHOWN]]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value.to_json() if isinstance(value, Citation) else value


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
