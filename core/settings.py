"""Settings, read from the environment in one place and passed in explicitly.

:meth:`Settings.from_env` is the only reader of ``os.environ``; it hands the same mapping to each section's
``read``, so every variable is parsed by the section (and so the layer) that uses it, and tests and evals can
build a ``Settings`` by hand. Each stage receives its own section, never the whole object, where it can.

Every read goes through :class:`Env`, which can record each one (name, kind, default, allowed range, the value in
effect): :func:`effective` returns the settings together with those records, so ``citewise config`` lists exactly
what the reader reads, with no second list of names to keep in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path


class SettingsError(ValueError):
    """A setting has a value citewise cannot use; the message names the variable and the fix."""


@dataclass(frozen=True)
class Read:
    """One variable as the reader read it: what kind of value, its default and allowed values, and what is in effect."""

    name: str
    kind: str  # text, integer, number, choice or boolean
    default: object
    allowed: str  # "1..50", "auto, fp32, bf16", ... ("" for free text)
    raw: str | None  # the environment's value (None: not set)
    value: object  # the value in effect
    secret: bool = False  # a key, token or password: never shown

    @property
    def source(self) -> str:
        return "environment" if self.raw not in (None, "") else "default"


@dataclass(frozen=True)
class Env:
    """Typed, range-checked reads from an environment mapping; an unset or empty variable gives the default.

    With ``reads`` set to a list, every read is recorded there as a :class:`Read`."""

    values: Mapping[str, str]
    reads: list[Read] | None = field(default=None, compare=False, repr=False)

    def _record(self, name: str, kind: str, default, allowed: str, value, secret: bool = False):
        if self.reads is not None:
            self.reads.append(Read(name, kind, default, allowed, self.values.get(name), value, secret))
        return value

    def str(self, name: str, default: str | None = None, *, secret: bool = False) -> str | None:
        return self._record(name, "text", default, "", self.values.get(name) or default, secret)

    def first(self, *names: str, secret: bool = False) -> str | None:
        """The first of ``names`` that is set (a citewise variable before the common one it falls back to)."""
        found = [self.str(name, secret=secret) for name in names]
        return next((value for value in found if value), None)

    def _number(self, name: str, default, lo, hi, kind: type, noun: str):
        raw = self.values.get(name)
        if raw is None or raw == "":
            return self._record(name, "integer" if kind is int else "number", default, f"{lo}..{hi}", default)
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not {noun}; expected {lo}..{hi}") from None
        if not lo <= value <= hi:
            raise SettingsError(f"{name}={value} is out of range; expected {lo}..{hi}")
        return self._record(name, "integer" if kind is int else "number", default, f"{lo}..{hi}", value)

    def int(self, name: str, default: int | None, lo: int, hi: int) -> int | None:
        return self._number(name, default, lo, hi, int, "an integer")

    def float(self, name: str, default: float, lo: float, hi: float) -> float:
        return self._number(name, default, lo, hi, float, "a number")

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = (self.values.get(name) or default).strip().lower()
        if value not in allowed:
            raise SettingsError(f"{name}={value!r} is not one of {', '.join(allowed)}")
        return self._record(name, "choice", default, ", ".join(allowed), value)

    def bool(self, name: str, default: bool) -> bool:
        raw = self.values.get(name)
        if raw is None or raw == "":
            value = default
        elif raw.lower() in {"1", "true", "yes", "on"}:
            value = True
        elif raw.lower() in {"0", "false", "no", "off"}:
            value = False
        else:
            raise SettingsError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")
        return self._record(name, "boolean", default, "1/0, true/false, yes/no, on/off", value)


# ---- retrieval: ingest → chunk → embed → store → search → re-rank ------------------------------------------------

@dataclass(frozen=True)
class IngestSettings:
    """What ingest accepts and how hard it works on one file (parses of PDF/HTML run in a sandboxed child)."""

    scrub_pii: bool = True
    max_file_mb: int = 50
    max_pdf_pages: int = 2000
    file_timeout_s: float = 60.0  # per PDF/HTML parse
    file_memory_mb: float = 1024.0  # per PDF/HTML parse, above the ingest process itself

    @classmethod
    def read(cls, env: Env) -> IngestSettings:
        return cls(scrub_pii=env.bool("CITEWISE_SCRUB_PII", cls.scrub_pii),
                   max_file_mb=env.int("CITEWISE_MAX_FILE_MB", cls.max_file_mb, 1, 10_000),
                   max_pdf_pages=env.int("CITEWISE_MAX_PDF_PAGES", cls.max_pdf_pages, 1, 1_000_000),
                   file_timeout_s=env.float("CITEWISE_FILE_TIMEOUT", cls.file_timeout_s, 1.0, 86_400.0),
                   file_memory_mb=env.float("CITEWISE_FILE_MEMORY_MB", cls.file_memory_mb, 64.0, 1_000_000.0))


@dataclass(frozen=True)
class QueueSettings:
    """Ingest workers on PostgreSQL's own queue (procrastinate): how often a worker says it is alive, and how long
    its silence lasts before its job is handed to another worker (a worker killed mid-document)."""

    heartbeat_s: float = 10.0
    stalled_s: float = 60.0
    max_attempts: int = 3  # a job the database failed (gone, disk full) is retried this often in all
    serve_worker: bool = True  # `citewise serve` runs one worker when no other is alive (scheduled source syncs)

    @classmethod
    def read(cls, env: Env) -> QueueSettings:
        queue = cls(heartbeat_s=env.float("CITEWISE_WORKER_HEARTBEAT", cls.heartbeat_s, 0.1, 3600.0),
                    stalled_s=env.float("CITEWISE_WORKER_STALLED_AFTER", cls.stalled_s, 0.5, 86_400.0),
                    max_attempts=env.int("CITEWISE_WORKER_MAX_ATTEMPTS", cls.max_attempts, 1, 100),
                    serve_worker=env.bool("CITEWISE_SERVE_WORKER", cls.serve_worker))
        if queue.stalled_s <= queue.heartbeat_s:
            raise SettingsError(f"CITEWISE_WORKER_STALLED_AFTER ({queue.stalled_s}) must be longer than "
                                f"CITEWISE_WORKER_HEARTBEAT ({queue.heartbeat_s}), or live workers look dead")
        return queue


@dataclass(frozen=True)
class ChunkSettings:
    """Chunk size in cl100k tokens. 200 keeps a chunk plus its title inside MiniLM's 256-wordpiece window."""

    max_tokens: int = 200
    overlap_tokens: int = 40

    @classmethod
    def read(cls, env: Env) -> ChunkSettings:
        chunk = cls(max_tokens=env.int("CITEWISE_CHUNK_TOKENS", cls.max_tokens, 32, 2000),
                    overlap_tokens=env.int("CITEWISE_CHUNK_OVERLAP", cls.overlap_tokens, 0, 1000))
        if chunk.overlap_tokens >= chunk.max_tokens:
            raise SettingsError(f"CITEWISE_CHUNK_OVERLAP ({chunk.overlap_tokens}) must be smaller than "
                                f"CITEWISE_CHUNK_TOKENS ({chunk.max_tokens})")
        return chunk


@dataclass(frozen=True)
class SearchSettings:
    """Hybrid search knobs: reciprocal-rank fusion constant and weights, candidates per side, HNSW breadth."""

    rrf_k: int = 60
    vector_weight: float = 1.0
    keyword_weight: float = 1.0
    candidates: int = 100
    # HNSW breadth: recall@10 against exact at 200k synthetic chunks 0.947 at 100, 0.979 at 200 (evals/bench_scale)
    ef_search: int = 200
    # postings scanned for keyword candidates (rarest query terms first): each costs a heap fetch, so this is the
    # keyword side's latency at scale; SciFact tune-half nDCG@10 is identical at 5,000 and 20,000
    keyword_postings: int = 5_000
    # a filter matching fewer chunks than this is searched exactly through the filter columns' indexes: an HNSW
    # walk must visit about candidates/selectivity tuples (34 us each here) to find enough matches, an exact scan
    # each matching chunk once (~5 us); they cross near 20,000 matches at a million chunks
    exact_filter_below: int = 20_000
    # Anserini's BEIR setting. SciFact train nDCG@10, side by side (evals: BM25 grid): 0.9/0.4 gives 0.7415
    # re-ranked vs 0.7382 for 1.2/0.75 (hybrid 0.7228 vs 0.7243, keyword 0.7004 vs 0.6973)
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    # chunks whose BM25 weights were written with an average chunk length further than this share from today's
    # are re-weighted after each ingest and delete (b=0.4: a 5% move shifts a typical score by about 2%)
    bm25_reweight_drift: float = 0.05

    @classmethod
    def read(cls, env: Env) -> SearchSettings:
        return cls(rrf_k=env.int("CITEWISE_RRF_K", cls.rrf_k, 1, 1000),
                   vector_weight=env.float("CITEWISE_VECTOR_WEIGHT", cls.vector_weight, 0.0, 10.0),
                   keyword_weight=env.float("CITEWISE_KEYWORD_WEIGHT", cls.keyword_weight, 0.0, 10.0),
                   candidates=env.int("CITEWISE_CANDIDATES", cls.candidates, 1, 1000),
                   ef_search=env.int("CITEWISE_EF_SEARCH", cls.ef_search, 10, 1000),
                   keyword_postings=env.int("CITEWISE_KEYWORD_POSTINGS", cls.keyword_postings, 100, 10**9),
                   exact_filter_below=env.int("CITEWISE_EXACT_FILTER_BELOW", cls.exact_filter_below, 0, 10**8),
                   bm25_k1=env.float("CITEWISE_BM25_K1", cls.bm25_k1, 0.0, 10.0),
                   bm25_b=env.float("CITEWISE_BM25_B", cls.bm25_b, 0.0, 1.0),
                   bm25_reweight_drift=env.float("CITEWISE_BM25_REWEIGHT_DRIFT", cls.bm25_reweight_drift, 0.0, 10.0))


@dataclass(frozen=True)
class EmbeddingSettings:
    """Local MiniLM by default; an OpenAI-compatible endpoint when ``base_url`` or ``model`` is set."""

    model: str = "all-MiniLM-L6-v2"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    batch_size: int = 32
    # the local model's arithmetic: bf16 where the CPU computes bf16 natively (2.7x fp32 here, cosine 0.99998),
    # else fp32; "auto" picks
    precision: str = "auto"

    @classmethod
    def read(cls, env: Env) -> EmbeddingSettings:
        precision = env.choice("CITEWISE_EMBEDDING_PRECISION", cls.precision, PRECISIONS)
        return cls(model=env.str("CITEWISE_EMBEDDING_MODEL", cls.model) or cls.model,
                   base_url=env.str("CITEWISE_EMBEDDING_BASE_URL"),
                   api_key=env.first("CITEWISE_EMBEDDING_API_KEY", "OPENAI_API_KEY", secret=True),
                   batch_size=env.int("CITEWISE_EMBEDDING_BATCH", cls.batch_size, 1, 2048), precision=precision)


PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class RerankSettings:
    backend: str = "features"  # features | none | cross-encoder | http
    model: str | None = None  # CrossEncoder path or name, or the model name sent to an HTTP endpoint
    url: str | None = None  # base URL of an HTTP rerank endpoint (POST {url}/rerank)
    fetch: int = 100  # candidates fetched before re-ranking
    vector_share: float = 0.5  # weight of the z-scored vector similarity against the z-scored BM25 score
    freshness_weight: float = 0.0  # bonus for recent documents (half-life one year), in z-score units
    duplicate_jaccard: float = 0.9  # drop a passage this similar (word shingles) to a better one

    @classmethod
    def read(cls, env: Env) -> RerankSettings:
        return cls(backend=env.str("CITEWISE_RERANKER", cls.backend) or cls.backend,
                   model=env.str("CITEWISE_RERANK_MODEL"), url=env.str("CITEWISE_RERANK_URL"),
                   fetch=env.int("CITEWISE_RERANK_FETCH", cls.fetch, 1, 1000),
                   vector_share=env.float("CITEWISE_RERANK_VECTOR_SHARE", cls.vector_share, 0.0, 1.0),
                   freshness_weight=env.float("CITEWISE_RERANK_FRESHNESS", cls.freshness_weight, 0.0, 10.0))


# ---- chat: condense → retrieve → build context → generate → verify → record ---------------------------------------

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
    batch: int = 512  # llama.cpp's n_batch: prompt tokens per forward pass (evals/results/: no effect on 2 cores)
    timeout_s: float = 120.0

    @classmethod
    def read(cls, env: Env, home: Path) -> LLMSettings:
        return cls(base_url=env.str("CITEWISE_LLM_BASE_URL"),
                   api_key=env.first("CITEWISE_LLM_API_KEY", "OPENAI_API_KEY", secret=True),
                   model=env.str("CITEWISE_LLM_MODEL"), state_dir=home / "llm", models_dir=home / "models",
                   n_ctx=env.int("CITEWISE_LLM_CONTEXT", cls.n_ctx, 1024, 131072),
                   threads=env.int("CITEWISE_LLM_THREADS", os.cpu_count() or 2, 1, 256),
                   batch=env.int("CITEWISE_LLM_BATCH", cls.batch, 8, 8192),
                   timeout_s=env.float("CITEWISE_LLM_TIMEOUT", cls.timeout_s, 1.0, 3600.0))


EVIDENCE = ("sentences", "chunks")


@dataclass(frozen=True)
class AnswerSettings:
    """How answers are assembled: the source budget in tokens, sources shown, and the abstention threshold."""

    # llama.cpp reads ~75 prompt tokens/s on 2 cores, so source tokens are time to the first word (evals/results/)
    context_tokens: int = 320
    sources: int = 3
    evidence: str = "sentences"  # the best-matching sentences of each passage and their neighbours, or "chunks"
    # a passage whose best sentence matches the question less than this share of the best passage's is not shown
    evidence_keep: float = 0.0
    prompt: str = "answer"  # the answer prompt's file under prompts/ ("answer-v1": the first round's)
    system_prompt: str = "system"  # the system prompt's file ("system-v1": the first round's)
    preset: str = "precise"
    # a fast refusal for the plainly off-topic only: with the verifier's anchor gate on, raising it to 0.35 changes
    # nothing on the tune half of XQuAD dev (python -m evals.gates), and at 0.20 no answerable question of that
    # half is refused (citewise eval calibrate); paraphrased questions sit lower than XQuAD's (evals/results/)
    min_similarity: float = 0.20
    # quotes behind claims (chat/engine/quotes.py): each claim carries the source sentence that states it and is
    # judged against that sentence; the reply follows prompts/answer-quoted.md, constrained by a grammar on the
    # managed llama.cpp server
    quotes: bool = False

    @classmethod
    def read(cls, env: Env, llm: LLMSettings) -> AnswerSettings:
        answer = cls(context_tokens=env.int("CITEWISE_CONTEXT_TOKENS", cls.context_tokens, 200, 100_000),
                     sources=env.int("CITEWISE_SOURCES", cls.sources, 1, 50),
                     evidence=env.choice("CITEWISE_EVIDENCE", cls.evidence, EVIDENCE),
                     evidence_keep=env.float("CITEWISE_EVIDENCE_KEEP", cls.evidence_keep, 0.0, 1.0),
                     prompt=env.str("CITEWISE_ANSWER_PROMPT", cls.prompt) or cls.prompt,
                     system_prompt=env.str("CITEWISE_SYSTEM_PROMPT", cls.system_prompt) or cls.system_prompt,
                     preset=env.str("CITEWISE_PRESET", cls.preset) or cls.preset,
                     min_similarity=env.float("CITEWISE_MIN_SIMILARITY", cls.min_similarity, -1.0, 1.0),
                     quotes=env.bool("CITEWISE_QUOTES", cls.quotes))
        if answer.context_tokens + 600 > llm.n_ctx and not llm.base_url:
            raise SettingsError(
                f"CITEWISE_CONTEXT_TOKENS ({answer.context_tokens}) leaves no room for the question and the answer "
                f"in the local model's {llm.n_ctx}-token window; use at most {llm.n_ctx - 600}")
        return answer


@dataclass(frozen=True)
class VerifySettings:
    """The checks an answer passes before it is shown (see chat/verify.py for what each one catches).

    Support is the share of a sentence's content terms found in one source.
    """

    min_terms: int = 3  # an answer with fewer content terms is too short to be an answer
    max_ungrounded: float = 0.5  # above this share of question terms missing from every source, abstain
    min_support: float = 0.5  # below this, no answer sentence is backed by any source: abstain
    repair_support: float = 0.5  # a source holding this share of a sentence's terms may be cited for it
    # the answer's lead: this share of the question's terms must sit around the source sentence holding it; chosen
    # on the tune half of XQuAD dev from the gate's curve (python -m evals.gates, evals/results/)
    min_anchor: float = 0.45
    # the meaning checks (chat/engine/meaning.py): a trained cross-encoder judges whether a cited passage states
    # each sentence (``min_stated``) and whether the lead answers the question (``min_answers``). Off by default:
    # measured on the tune part of the twice-labelled set and the tune-half replies, no threshold pair beat the
    # word checks (evals/results/2026-12-05-meaning-checks.md)
    meaning: bool = False
    min_stated: float = 0.5
    min_answers: float = 0.5
    # with quotes behind claims (AnswerSettings.quotes), this share of a claim's terms must be its quote's or the
    # question's: a faithful claim restates the sentence it quotes
    min_quoted: float = 0.75

    @classmethod
    def read(cls, env: Env) -> VerifySettings:
        return cls(min_terms=env.int("CITEWISE_VERIFY_MIN_TERMS", cls.min_terms, 0, 100),
                   max_ungrounded=env.float("CITEWISE_VERIFY_MAX_UNGROUNDED", cls.max_ungrounded, 0.0, 1.0),
                   min_support=env.float("CITEWISE_VERIFY_MIN_SUPPORT", cls.min_support, 0.0, 1.0),
                   repair_support=env.float("CITEWISE_VERIFY_REPAIR_SUPPORT", cls.repair_support, 0.0, 1.0),
                   min_anchor=env.float("CITEWISE_VERIFY_MIN_ANCHOR", cls.min_anchor, 0.0, 1.0),
                   meaning=env.bool("CITEWISE_VERIFY_MEANING", cls.meaning),
                   min_stated=env.float("CITEWISE_VERIFY_MIN_STATED", cls.min_stated, 0.0, 1.0),
                   min_answers=env.float("CITEWISE_VERIFY_MIN_ANSWERS", cls.min_answers, 0.0, 1.0),
                   min_quoted=env.float("CITEWISE_VERIFY_MIN_QUOTED", cls.min_quoted, 0.0, 1.0))


@dataclass(frozen=True)
class DeskSettings:
    """The front desk every door calls: how long a question may be, and how many answers run and wait."""

    max_question_chars: int = 4000
    # the most numbered sources a question may ask for, at every door (the web panel's slider stops here too)
    max_sources: int = 20
    # earlier (question, answer) pairs of a conversation a follow-up is condensed with, at every door
    history_turns: int = 6
    # answers running at once (each waits on the LLM) and waiting beyond them; more are refused with 503 +
    # Retry-After. The database pool is sized from these (see docs/configuration.md).
    max_concurrent_answers: int = 4
    max_queued_answers: int = 32
    queue_wait_s: float = 120.0
    # questions one asker (a user; a door for anonymous callers) may have waiting; more are refused with 429. A free
    # slot goes to the asker served least, so a script's burst waits behind everyone else's single questions
    max_queued_per_asker: int = 10

    @classmethod
    def read(cls, env: Env) -> DeskSettings:
        # the local llama.cpp server generates one answer at a time, and a new request cuts off the one it is
        # streaming: with it, answers queue in citewise's gate instead
        concurrent = cls.max_concurrent_answers if env.str("CITEWISE_LLM_BASE_URL") else 1
        return cls(max_question_chars=env.int("CITEWISE_MAX_QUESTION_CHARS", cls.max_question_chars, 10, 100_000),
                   max_sources=env.int("CITEWISE_MAX_SOURCES", cls.max_sources, 1, 50),
                   history_turns=env.int("CITEWISE_HISTORY_TURNS", cls.history_turns, 0, 50),
                   max_concurrent_answers=env.int("CITEWISE_MAX_CONCURRENT_ANSWERS", concurrent, 1, 256),
                   max_queued_answers=env.int("CITEWISE_MAX_QUEUED_ANSWERS", cls.max_queued_answers, 0, 10_000),
                   queue_wait_s=env.float("CITEWISE_QUEUE_WAIT", cls.queue_wait_s, 1.0, 3600.0),
                   max_queued_per_asker=env.int("CITEWISE_MAX_QUEUED_PER_ASKER", cls.max_queued_per_asker, 1,
                                                10_000))


@dataclass(frozen=True)
class WebSettings:
    """The web server: where it listens, who may log in, and the shared secret that signs their sessions."""

    host: str = "127.0.0.1"
    port: int = 8000
    users: str | None = field(default=None, repr=False)  # "alice:password,bob:password"; unset: one demo user
    auth_header: str | None = None  # trust this header's user name (set only behind an authenticating proxy)
    auth_secret: str | None = field(default=None, repr=False)  # signs login sessions; generated once when unset

    @classmethod
    def read(cls, env: Env) -> WebSettings:
        return cls(host=env.str("CITEWISE_HOST", cls.host) or cls.host,
                   port=env.int("CITEWISE_PORT", cls.port, 1, 65535),
                   users=env.str("CITEWISE_WEB_USERS", secret=True),
                   auth_header=env.str("CITEWISE_WEB_AUTH_HEADER"),
                   auth_secret=env.first("CITEWISE_AUTH_SECRET", "CHAINLIT_AUTH_SECRET", secret=True))


@dataclass(frozen=True)
class ApiSettings:
    """The JSON API: who may call it (``name:token,...``; unset: no auth, for loopback use)."""

    tokens: str | None = field(default=None, repr=False)

    @classmethod
    def read(cls, env: Env) -> ApiSettings:
        return cls(tokens=env.str("CITEWISE_API_TOKENS", secret=True))


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
    insecure_local_test: bool = False  # accept unsigned HTTP events (local tests only; never in production)

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token and (self.signing_secret or self.app_token or self.insecure_local_test))

    @classmethod
    def read(cls, env: Env) -> SlackSettings:
        allowed = env.str("CITEWISE_SLACK_ALLOWED_USERS") or ""
        return cls(bot_token=env.str("SLACK_BOT_TOKEN", secret=True),
                   signing_secret=env.str("SLACK_SIGNING_SECRET", secret=True),
                   app_token=env.str("SLACK_APP_TOKEN", secret=True), api_url=env.str("CITEWISE_SLACK_API_URL"),
                   channel_filters=env.str("CITEWISE_SLACK_CHANNEL_FILTERS"),
                   allowed_users=tuple(u.strip() for u in allowed.split(",") if u.strip()),
                   update_interval_s=env.float("CITEWISE_SLACK_UPDATE_INTERVAL", cls.update_interval_s, 0.0, 60.0),
                   insecure_local_test=env.bool("CITEWISE_SLACK_INSECURE_LOCAL_TEST", False))


def _default_home(env: Env) -> Path:
    data = env.str("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "citewise"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None = None
    # streaming replicas that serve searches; writes (ingest, turns, feedback) always go to database_url
    replica_urls: tuple[str, ...] = ()
    replica_max_lag_s: float = 5.0  # a replica further behind the primary than this is skipped
    # the CLI's identity: its access groups come from app_users; unset, the CLI is the operator (reads everything)
    user: str | None = None
    public_ungrouped: bool = True  # documents without access groups are readable by everyone
    retention_days: int | None = None  # turns and web threads older than this are deleted (unset: kept)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    rerank: RerankSettings = field(default_factory=RerankSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    desk: DeskSettings = field(default_factory=DeskSettings)
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
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return cls.read(Env(os.environ if environ is None else environ))

    @classmethod
    def read(cls, env: Env) -> Settings:
        home = Path(env.str("CITEWISE_HOME", str(_default_home(env))) or "").expanduser()
        llm = LLMSettings.read(env, home)
        retention = env.int("CITEWISE_RETENTION_DAYS", None, 1, 36500)
        replicas = tuple(u.strip() for u in (env.str("CITEWISE_DATABASE_REPLICA_URLS") or "").split(",") if u.strip())
        if replicas and not env.str("CITEWISE_DATABASE_URL"):
            raise SettingsError("CITEWISE_DATABASE_REPLICA_URLS needs CITEWISE_DATABASE_URL: replicas follow a "
                                "primary, and the embedded PostgreSQL has none; set the primary's URL too")
        return cls(home=home, database_url=env.str("CITEWISE_DATABASE_URL"), user=env.str("CITEWISE_USER"),
                   replica_urls=replicas,
                   replica_max_lag_s=env.float("CITEWISE_REPLICA_MAX_LAG", cls.replica_max_lag_s, 0.0, 86_400.0),
                   public_ungrouped=env.bool("CITEWISE_PUBLIC_UNGROUPED", True), retention_days=retention,
                   ingest=IngestSettings.read(env), queue=QueueSettings.read(env), chunk=ChunkSettings.read(env),
                   search=SearchSettings.read(env),
                   embedding=EmbeddingSettings.read(env), rerank=RerankSettings.read(env), llm=llm,
                   answer=AnswerSettings.read(env, llm), verify=VerifySettings.read(env), desk=DeskSettings.read(env),
                   web=WebSettings.read(env), api=ApiSettings.read(env), slack=SlackSettings.read(env))


def effective(environ: Mapping[str, str] | None = None) -> tuple[Settings, list[Read]]:
    """The settings and every variable read to make them, in reading order, each once (its first read)."""
    env = Env(os.environ if environ is None else environ, reads=[])
    settings = Settings.read(env)
    seen: dict[str, Read] = {}
    for read in env.reads or []:
        seen.setdefault(read.name, read)
    return settings, list(seen.values())
