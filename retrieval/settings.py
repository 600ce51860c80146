"""Settings, read from the environment in one place and passed in explicitly.

Nothing reads ``os.environ`` outside :meth:`Settings.from_env`, so tests and the evals can build a
``Settings`` by hand and every stage sees the same values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path


class SettingsError(ValueError):
    """A setting has a value citewise cannot use; the message names the variable and the fix."""


def _default_home(env: Mapping[str, str]) -> Path:
    data = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "citewise"


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer; expected {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value} is out of range; expected {lo}..{hi}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number; expected {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value} is out of range; expected {lo}..{hi}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


@dataclass(frozen=True)
class ChunkSettings:
    """Chunk size in cl100k tokens. 200 keeps a chunk plus its title inside MiniLM's 256-wordpiece window."""

    max_tokens: int = 200
    overlap_tokens: int = 40


@dataclass(frozen=True)
class SearchSettings:
    """Hybrid search knobs: reciprocal-rank fusion constant and weights, candidates per side, HNSW breadth."""

    rrf_k: int = 60
    vector_weight: float = 1.0
    keyword_weight: float = 1.0
    candidates: int = 100
    ef_search: int = 100
    bm25_k1: float = 1.2
    bm25_b: float = 0.75


@dataclass(frozen=True)
class EmbeddingSettings:
    """Local MiniLM by default; an OpenAI-compatible endpoint when ``base_url`` or ``model`` is set."""

    model: str = "all-MiniLM-L6-v2"
    base_url: str | None = None
    api_key: str | None = None
    batch_size: int = 32


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None = None
    scrub_pii: bool = True
    max_file_mb: int = 50
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def with_database(self, url: str | None) -> Settings:
        return replace(self, database_url=url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("CITEWISE_HOME") or _default_home(env)).expanduser()
        chunk = ChunkSettings(
            max_tokens=_int(env, "CITEWISE_CHUNK_TOKENS", ChunkSettings.max_tokens, 32, 2000),
            overlap_tokens=_int(env, "CITEWISE_CHUNK_OVERLAP", ChunkSettings.overlap_tokens, 0, 1000),
        )
        if chunk.overlap_tokens >= chunk.max_tokens:
            raise SettingsError(
                f"CITEWISE_CHUNK_OVERLAP ({chunk.overlap_tokens}) must be smaller than "
                f"CITEWISE_CHUNK_TOKENS ({chunk.max_tokens})"
            )
        search = SearchSettings(
            rrf_k=_int(env, "CITEWISE_RRF_K", SearchSettings.rrf_k, 1, 1000),
            vector_weight=_float(env, "CITEWISE_VECTOR_WEIGHT", SearchSettings.vector_weight, 0.0, 10.0),
            keyword_weight=_float(env, "CITEWISE_KEYWORD_WEIGHT", SearchSettings.keyword_weight, 0.0, 10.0),
            candidates=_int(env, "CITEWISE_CANDIDATES", SearchSettings.candidates, 1, 1000),
            ef_search=_int(env, "CITEWISE_EF_SEARCH", SearchSettings.ef_search, 10, 1000),
        )
        embedding = EmbeddingSettings(
            model=env.get("CITEWISE_EMBEDDING_MODEL") or EmbeddingSettings.model,
            base_url=env.get("CITEWISE_EMBEDDING_BASE_URL") or None,
            api_key=env.get("CITEWISE_EMBEDDING_API_KEY") or env.get("OPENAI_API_KEY") or None,
            batch_size=_int(env, "CITEWISE_EMBEDDING_BATCH", EmbeddingSettings.batch_size, 1, 2048),
        )
        return cls(
            home=home,
            database_url=env.get("CITEWISE_DATABASE_URL") or None,
            scrub_pii=_bool(env, "CITEWISE_SCRUB_PII", True),
            max_file_mb=_int(env, "CITEWISE_MAX_FILE_MB", 50, 1, 10_000),
            chunk=chunk,
            search=search,
            embedding=embedding,
        )
