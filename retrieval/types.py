"""The frozen records that pass between stages. Ids are content hashes, so unchanged input is a no-op."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def content_hash(*parts: object) -> str:
    """A 128-bit hex digest of the parts, stable across runs and machines."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part if isinstance(part, str) else json.dumps(part, sort_keys=True, default=str)
        h.update(data.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


@dataclass(frozen=True)
class Document:
    """One cleaned source document. ``id`` covers identity and content, so any change yields a new id."""

    source: str
    uri: str
    text: str
    title: str = ""
    author: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    groups: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return content_hash(
            self.source, self.uri, self.title, self.author, self.created_at, self.updated_at,
            sorted(self.groups), self.metadata, self.text,
        )


@dataclass(frozen=True)
class Chunk:
    """A span of a document: ``text == document.text[start:end]``."""

    document_id: str
    ordinal: int
    text: str
    token_count: int
    start: int
    end: int
    heading_path: tuple[str, ...] = ()
    instructions: tuple[str, ...] = ()  # sentences addressed to the assistant, flagged at ingest (not in the id)

    @property
    def id(self) -> str:
        return content_hash(self.document_id, self.ordinal, self.text)

    @property
    def text_hash(self) -> str:
        return content_hash(self.text)


@dataclass(frozen=True)
class Hit:
    """A search result. Ranks are 1-based and ``None`` when that side did not return the chunk."""

    chunk_id: str
    document_id: str
    text: str
    title: str
    source: str
    uri: str
    heading_path: tuple[str, ...]
    start: int
    end: int
    score: float
    vector_rank: int | None = None
    keyword_rank: int | None = None
    vector_similarity: float | None = None
    keyword_score: float | None = None
    author: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    ordinal: int = 0
    instructions: tuple[str, ...] | None = None  # flagged at ingest; None: stored before flagging existed

    def to_json(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "title": self.title,
            "source": self.source,
            "uri": self.uri,
            "heading_path": list(self.heading_path),
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "vector_rank": self.vector_rank,
            "keyword_rank": self.keyword_rank,
            "vector_similarity": self.vector_similarity,
            "keyword_score": self.keyword_score,
            "author": self.author,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "text": self.text,
            "instructions": None if self.instructions is None else list(self.instructions),
        }
