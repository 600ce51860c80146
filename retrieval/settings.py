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
    keyword_postings: int = 20_000  # postings scanned for keyword candidates (rarest query terms first)
    # Anserini's BEIR setting. SciFact train nDCG@10, side by side (evals: BM25 grid): 0.9/0.4 gives 0.7415
    # re-ranked vs 0.7382 for 1.2/0.75 (hybrid 0.7228 vs 0.7243, keyword 0.7004 vs 0.6973)
    bm25_k1: float = 0.9
    bm25_b: float = 0.4


@dataclass(frozen=True)
class EmbeddingSettings:
    """Local MiniLM by default; an OpenAI-compatible endpoint when ``base_url`` or ``model`` is set."""

    model: str = "all-MiniLM-L6-v2"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    batch_size: int = 32


@dataclass(frozen=True)
class RerankSettings:
    backend: str = "features"  # features | none | cross-encoder | http
    model: str | None = None  # CrossEncoder path or name, or the model name sent to an HTTP endpoint
    url: str | None = None  # base URL of an HTTP rerank endpoint (POST {url}/rerank)
    fetch: int = 100  # candidates fetched before re-ranking
    vector_share: float = 0.5  # weight of the z-scored vector similarity against the z-scored BM25 score
    freshness_weight: float = 0.0  # bonus for recent documents (half-life one year), in z-score units
    duplicate_jaccard: float = 0.9  # drop a passage this similar (word shingles) to a better one


@dataclass(frozen=True)
class LLMSettings:
    """An OpenAI-compatible endpoint when ``base_url`` is set; otherwise citewise's own llama.cpp server."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    state_dir: Path = Path("llm")
    models_dir: Path = Path("models")
    n_ctx: int = 4096
    threads: int = 2
    timeout_s: float = 120.0


@dataclass(frozen=True)
class AnswerSettings:
    """How answers are assembled: the source budget in tokens, sources shown, and the abstention threshold."""

    context_tokens: int = 1200  # llama.cpp reads ~80 prompt tokens/s on 2 cores: this keeps the first token ~15 s
    sources: int = 5
    preset: str = "precise"
    # calibrated on XQuAD dev by `citewise eval calibrate`: 1.6% of answerable questions abstain, 65% of
    # unanswerable ones do before the LLM is asked (which abstains on more of them itself)
    min_similarity: float = 0.30


@dataclass(frozen=True)
class WebSettings:
    """The web server: where it listens, who may log in, and the shared secret that signs their sessions."""

    host: str = "127.0.0.1"
    port: int = 8000
    users: str | None = field(default=None, repr=False)  # "alice:password,bob:password"; unset: one demo user
    auth_header: str | None = None  # trust this header's user name (set only behind an authenticating proxy)
    auth_secret: str | None = field(default=None, repr=False)  # signs login sessions; generated once when unset


@dataclass(frozen=True)
class ApiSettings:
    """The JSON API: who may call it, and how much one request may ask."""

    tokens: str | None = field(default=None, repr=False)  # "name:token,..."; unset: no auth (loopback use)
    max_question_chars: int = 4000
    # answers running at once (each holds one database connection and waits on the LLM) and waiting beyond them;
    # more are refused with 503 + Retry-After. The database pool is sized from these (see docs/configuration.md).
    max_concurrent_answers: int = 4
    max_queued_answers: int = 32


@dataclass(frozen=True)
class SlackSettings:
    """The Slack bot: credentials, where the Web API is, which channels search what, and who may ask."""

    bot_token: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    app_token: str | None = field(default=None, repr=False)  # Socket Mode when set
    api_url: str | None = None  # the Web API's base URL (default Slack's; a local stand-in in tests)
    channel_filters: str | None = None  # JSON: {"C0123": ["source=handbook"], "*": [...]}
    allowed_users: tuple[str, ...] = ()  # Slack user ids; empty: everyone in the workspace
    update_interval_s: float = 1.0  # at most one chat.update per interval while streaming (Slack rate limits)

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token and (self.signing_secret or self.app_token))


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None = None
    # the CLI's identity: its access groups come from app_users; unset, the CLI is the operator (reads everything)
    user: str | None = None
    public_ungrouped: bool = True  # documents without access groups are readable by everyone
    retention_days: int | None = None  # turns and web threads older than this are deleted (unset: kept)
    scrub_pii: bool = True
    max_file_mb: int = 50
    max_pdf_pages: int = 2000
    file_timeout_s: float = 60.0  # per PDF/HTML parse
    file_memory_mb: float = 1024.0  # per PDF/HTML parse, above the ingest process itself
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    rerank: RerankSettings = field(default_factory=RerankSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    web: WebSettings = field(default_factory=WebSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)

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
            keyword_postings=_int(env, "CITEWISE_KEYWORD_POSTINGS", SearchSettings.keyword_postings, 100, 10**9),
            bm25_k1=_float(env, "CITEWISE_BM25_K1", SearchSettings.bm25_k1, 0.0, 10.0),
            bm25_b=_float(env, "CITEWISE_BM25_B", SearchSettings.bm25_b, 0.0, 1.0),
        )
        embedding = EmbeddingSettings(
            model=env.get("CITEWISE_EMBEDDING_MODEL") or EmbeddingSettings.model,
            base_url=env.get("CITEWISE_EMBEDDING_BASE_URL") or None,
            api_key=env.get("CITEWISE_EMBEDDING_API_KEY") or env.get("OPENAI_API_KEY") or None,
            batch_size=_int(env, "CITEWISE_EMBEDDING_BATCH", EmbeddingSettings.batch_size, 1, 2048),
        )
        rerank = RerankSettings(
            backend=env.get("CITEWISE_RERANKER") or RerankSettings.backend,
            model=env.get("CITEWISE_RERANK_MODEL") or None,
            url=env.get("CITEWISE_RERANK_URL") or None,
            fetch=_int(env, "CITEWISE_RERANK_FETCH", RerankSettings.fetch, 1, 1000),
            vector_share=_float(env, "CITEWISE_RERANK_VECTOR_SHARE", RerankSettings.vector_share, 0.0, 1.0),
            freshness_weight=_float(env, "CITEWISE_RERANK_FRESHNESS", RerankSettings.freshness_weight, 0.0, 10.0),
        )
        llm = LLMSettings(
            base_url=env.get("CITEWISE_LLM_BASE_URL") or None,
            api_key=env.get("CITEWISE_LLM_API_KEY") or env.get("OPENAI_API_KEY") or None,
            model=env.get("CITEWISE_LLM_MODEL") or None,
            state_dir=home / "llm",
            models_dir=home / "models",
            n_ctx=_int(env, "CITEWISE_LLM_CONTEXT", LLMSettings.n_ctx, 1024, 131072),
            threads=_int(env, "CITEWISE_LLM_THREADS", os.cpu_count() or 2, 1, 256),
            timeout_s=_float(env, "CITEWISE_LLM_TIMEOUT", LLMSettings.timeout_s, 1.0, 3600.0),
        )
        answer = AnswerSettings(
            context_tokens=_int(env, "CITEWISE_CONTEXT_TOKENS", AnswerSettings.context_tokens, 200, 100_000),
            sources=_int(env, "CITEWISE_SOURCES", AnswerSettings.sources, 1, 50),
            preset=env.get("CITEWISE_PRESET") or AnswerSettings.preset,
            min_similarity=_float(env, "CITEWISE_MIN_SIMILARITY", AnswerSettings.min_similarity, -1.0, 1.0),
        )
        if answer.context_tokens + 600 > llm.n_ctx and not llm.base_url:
            raise SettingsError(
                f"CITEWISE_CONTEXT_TOKENS ({answer.context_tokens}) leaves no room for the question and the answer "
                f"in the local model's {llm.n_ctx}-token window; use at most {llm.n_ctx - 600}"
            )
        web = WebSettings(
            host=env.get("CITEWISE_HOST") or WebSettings.host,
            port=_int(env, "CITEWISE_PORT", WebSettings.port, 1, 65535),
            users=env.get("CITEWISE_WEB_USERS") or None,
            auth_header=env.get("CITEWISE_WEB_AUTH_HEADER") or None,
            auth_secret=env.get("CITEWISE_AUTH_SECRET") or env.get("CHAINLIT_AUTH_SECRET") or None,
        )
        api = ApiSettings(
            tokens=env.get("CITEWISE_API_TOKENS") or None,
            max_question_chars=_int(env, "CITEWISE_MAX_QUESTION_CHARS", ApiSettings.max_question_chars, 10, 100_000),
            # the local llama.cpp server generates one answer at a time, and a new request cuts off the one it is
            # streaming: with it, answers queue in citewise's gate instead
            max_concurrent_answers=_int(env, "CITEWISE_MAX_CONCURRENT_ANSWERS",
                                        ApiSettings.max_concurrent_answers if env.get("CITEWISE_LLM_BASE_URL") else 1,
                                        1, 256),
            max_queued_answers=_int(env, "CITEWISE_MAX_QUEUED_ANSWERS", ApiSettings.max_queued_answers, 0, 10_000),
        )
        slack = SlackSettings(
            bot_token=env.get("SLACK_BOT_TOKEN") or None,
            signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            app_token=env.get("SLACK_APP_TOKEN") or None,
            api_url=env.get("CITEWISE_SLACK_API_URL") or None,
            channel_filters=env.get("CITEWISE_SLACK_CHANNEL_FILTERS") or None,
            allowed_users=tuple(u.strip() for u in (env.get("CITEWISE_SLACK_ALLOWED_USERS") or "").split(",")
                                if u.strip()),
            update_interval_s=_float(env, "CITEWISE_SLACK_UPDATE_INTERVAL", SlackSettings.update_interval_s, 0.0, 60.0),
        )
        return cls(
            home=home,
            web=web,
            api=api,
            slack=slack,
            rerank=rerank,
            llm=llm,
            answer=answer,
            database_url=env.get("CITEWISE_DATABASE_URL") or None,
            user=env.get("CITEWISE_USER") or None,
            public_ungrouped=_bool(env, "CITEWISE_PUBLIC_UNGROUPED", True),
            retention_days=_int(env, "CITEWISE_RETENTION_DAYS", 0, 1, 36500) if env.get("CITEWISE_RETENTION_DAYS")
            else None,
            scrub_pii=_bool(env, "CITEWISE_SCRUB_PII", True),
            max_file_mb=_int(env, "CITEWISE_MAX_FILE_MB", 50, 1, 10_000),
            max_pdf_pages=_int(env, "CITEWISE_MAX_PDF_PAGES", 2000, 1, 1_000_000),
            file_timeout_s=_float(env, "CITEWISE_FILE_TIMEOUT", 60.0, 1.0, 86_400.0),
            file_memory_mb=_float(env, "CITEWISE_FILE_MEMORY_MB", 1024.0, 64.0, 1_000_000.0),
            chunk=chunk,
            search=search,
            embedding=embedding,
        )
