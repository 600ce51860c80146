"""The front desk every door calls: CLI, web UI, JSON API, OpenAI-compatible endpoint, Slack and the evals.

A door turns what it received into an :class:`AskRequest` and hands it over. The desk validates and normalises
it once (length, sampling from a preset plus overrides, filters), resolves the asker's access scope, and admits
it through one process-wide gate (chat.desk.gate) before :func:`chat.engine.ask.ask` runs. A rule kept here
cannot be forgotten by a door; a rejection is a :class:`Rejected` whose ``status`` a door maps to its own way of
saying no. Feedback comes through here too (:meth:`FrontDesk.rate`), so who may rate a turn is one rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg_pool import PoolTimeout

from chat import telemetry
from chat.desk.gate import Gate
from chat.desk.refusals import NotFound, Rejected, TooLong, Unavailable
from chat.engine import ask as engine
from chat.engine.llm import LLMError
from chat.engine.services import Services
from chat.sampling import Sampling, SamplingError, preset
from chat.turns import store as turns
from chat.types import Answer, Question
from core import access, db
from core.settings import Settings
from retrieval import filters as grammar
from retrieval.clean import plain

DATABASE_ERRORS = (psycopg.OperationalError, PoolTimeout)


def unavailable(exc: BaseException) -> Unavailable:
    """What a door says when the database is lost or unreachable (also the HTTP app's handler for any route)."""
    return Unavailable(f"the database is unavailable ({db.first_line(exc)}); try again in a few seconds",
                       retry_after=5)


@contextmanager
def _database() -> Iterator[None]:
    """Turn a lost or unreachable database into :class:`Unavailable`, which every door shows as such."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise unavailable(exc) from exc


def _answer(services: Services, q: Question, on_token: Callable[[str], None] | None = None,
            stop: Callable[[], bool] | None = None) -> Answer:
    try:
        with _database():
            answer = engine.ask(services, q, on_token, stop)
    except engine.Cancelled:
        telemetry.GATE.labels("cancelled").inc()
        raise
    except Unavailable:
        telemetry.FAILURES.labels("database").inc()
        raise
    except LLMError:
        telemetry.FAILURES.labels("llm").inc()
        raise
    telemetry.observe(answer, q.channel)
    return answer


@dataclass(frozen=True, kw_only=True)
class AskRequest:
    """A question as a door received it, not yet validated. Sampling is a preset name plus overrides (None keeps
    the preset's value); filters are grammar strings or already parsed conditions."""

    text: str
    channel: str  # cli, web, api, openai, slack, eval
    user_id: str | None
    conversation_id: str | None = None  # None starts a new conversation
    filters: tuple[str | grammar.Filter, ...] = ()
    preset: str | None = None  # None: the server's default (CITEWISE_PRESET)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    seed: int | None = None
    sources: int | None = None
    client_ref: str | None = None
    history: tuple[tuple[str, str], ...] | None = None
    operator: bool = False  # the CLI's operator (no CITEWISE_USER) or an eval: reads everything


@dataclass(frozen=True, kw_only=True)
class Rating:
    """A thumb as a door received it: on the answer (with an optional comment and the source it is about), or on
    one cited source alone (``source_only``: the web UI's per-source buttons)."""

    turn_id: str
    value: str | int  # up / down (or 1 / -1)
    user_id: str | None
    channel: str
    comment: str | None = None
    citation: int | None = None
    source_only: bool = False
    conversation_id: str | None = None  # where the door knows it: the turn must belong to this conversation
    feedback_id: int | None = None  # a thumb of this user's to change instead of adding one (the web UI)
    operator: bool = False  # the CLI's operator (no CITEWISE_USER): may rate any turn


# The name the JSON API and the OpenAI endpoint give every caller when no API tokens are configured: one name for
# everyone, so it is a door, not a person, to the gate.
SHARED_API_CALLER = "api"


def asker(q: Question) -> str:
    """Whose line a question waits in: its user, or its door for anonymous callers (the per-asker cap applies to
    users only: a door is many people)."""
    if not q.user_id or (q.channel in ("api", "openai") and q.user_id == SHARED_API_CALLER):
        return f"door:{q.channel}"
    return f"user:{q.user_id}"


@dataclass(frozen=True)
class Queued:
    """The question waits for a slot; ``ahead`` questions will be answered first (sent again when it changes)."""

    ahead: int

    @property
    def text(self) -> str:
        """What a door shows while the question waits."""
        if self.ahead == 0:
            return "Waiting for a free answer slot: yours is next…"
        return f"Waiting for a free answer slot: {self.ahead} question{'s' if self.ahead != 1 else ''} ahead of you…"


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Done:
    answer: Answer


@dataclass(frozen=True)
class Checked:
    text: str
    filters: list[grammar.Filter]
    sampling: Sampling


def validate(req: AskRequest, cfg: Settings) -> Checked:
    """The request's own validation, which needs no database: length, sources, filters, sampling."""
    limit = cfg.desk.max_question_chars
    text = plain(req.text)
    if len(text) > limit:
        raise TooLong(f"the question is {len(text)} characters; the limit is {limit} "
                      "(an admin can raise CITEWISE_MAX_QUESTION_CHARS)")
    if not text.strip():
        raise Rejected("the question is empty")
    most = cfg.desk.max_sources
    if req.sources is not None and not 1 <= req.sources <= most:
        raise Rejected(f"sources={req.sources} is out of range; expected 1..{most} (CITEWISE_MAX_SOURCES)")
    try:
        parsed = [f if isinstance(f, grammar.Filter) else grammar.parse(plain(f)) for f in req.filters]
    except grammar.FilterError as exc:
        raise Rejected(f"filters: {exc}") from None
    try:
        sampling = preset(req.preset or cfg.answer.preset).with_overrides(
            temperature=req.temperature, top_p=req.top_p, top_k=req.top_k, max_tokens=req.max_tokens, seed=req.seed)
    except SamplingError as exc:
        raise Rejected(f"sampling: {exc}") from None
    return Checked(text, parsed, sampling)


class FrontDesk:
    def __init__(self, services: Services, gate: Gate | None = None) -> None:
        self.services = services
        self.gate = gate or Gate.of(services.settings.desk)

    def _scope(self, req: AskRequest) -> grammar.Scope:
        if req.operator:
            return grammar.EVERYTHING
        with _database():
            return self.scope_of(req.user_id)

    def scope_of(self, user_id: str | None) -> grammar.Scope:
        """The documents ``user_id`` may read (also what a door's welcome lists)."""
        with self.services.pool.connection() as conn:
            who = access.resolve(conn, user_id)
        return grammar.Scope.of(who, self.services.settings.public_ungrouped)

    def _history(self, pairs: tuple[tuple[str, str], ...] | None) -> tuple[tuple[str, str], ...] | None:
        """A caller's own history (the OpenAI endpoint's messages), cleaned and cut to the window every door uses."""
        if not pairs:
            return pairs
        window = self.services.settings.desk.history_turns
        return tuple((plain(q), plain(a)) for q, a in pairs[len(pairs) - window:] if window)

    def rate(self, r: Rating) -> int:
        """Store a thumb; the one rule for every door: a turn is rated by whoever asked it, or by an admin. A turn
        that is not the rater's is refused as not found (404), so a rater learns nothing about others' turns."""
        try:
            with _database(), self.services.pool.connection() as conn:
                turn = turns.asked(conn, r.turn_id)
                if turn is None or (r.conversation_id is not None and turn.conversation_id != r.conversation_id):
                    raise NotFound(f"no answer {r.turn_id} of yours" + (" in this conversation"
                                                                        if r.conversation_id else ""))
                if not (r.operator or turn.user_id == r.user_id or access.resolve(conn, r.user_id).admin):
                    raise NotFound(f"no answer {r.turn_id} of yours: only the person who asked it, or an admin, "
                                   "may rate it")
                if r.source_only:
                    if r.citation is None:
                        raise Rejected("a source rating needs the number of the source it rates")
                    return turns.rate_source(conn, r.turn_id, r.citation, r.value, r.user_id, r.channel, r.comment)
                if r.feedback_id is not None and turns.update_feedback(conn, r.feedback_id, r.value, r.comment,
                                                                       r.user_id):
                    return r.feedback_id
                return turns.record_feedback(conn, r.turn_id, r.value, r.comment, r.citation, r.user_id, r.channel)
        except turns.FeedbackError as exc:
            raise Rejected(str(exc)) from None

    def annotate(self, feedback_id: int, comment: str | None, citation: int | None, user_id: str | None) -> None:
        """Add a comment (and the source it is about) to a thumb the same user gave (Slack's modal)."""
        try:
            with _database(), self.services.pool.connection() as conn:
                turns.annotate_feedback(conn, feedback_id, comment, citation, user_id)
        except turns.FeedbackError as exc:
            raise Rejected(str(exc)) from None

    def receive(self, req: AskRequest) -> Question:
        """Validate and normalise ``req``, resolve its scope, and refuse at once if the queue is full."""
        ok = validate(req, self.services.settings)
        question = Question(text=ok.text, conversation_id=plain(req.conversation_id or str(uuid.uuid4())),
                            channel=req.channel, user_id=req.user_id, scope=self._scope(req), filters=ok.filters,
                            sampling=ok.sampling, sources=req.sources, client_ref=req.client_ref,
                            history=self._history(req.history))
        self.gate.refuse_if_full(asker(question))
        return question

    def answer(self, q: Question, on_token: Callable[[str], None] | None = None,
               on_position: Callable[[int], None] | None = None) -> Answer:
        """Wait for a slot on this thread, then answer (callers on threads: CLI, Slack, evals). ``on_position``
        hears how many questions are ahead while it waits."""
        with self.gate.slot(asker(q), on_position):
            return _answer(self.services, q, on_token)

    def ask(self, req: AskRequest, on_token: Callable[[str], None] | None = None) -> Answer:
        return self.answer(self.receive(req), on_token)

    async def stream(self, q: Question) -> AsyncIterator[Queued | Token | Done]:
        """Yield :class:`Queued` while the question waits for a slot (again whenever its place changes), then
        :class:`Token` items while the answer streams, then one :class:`Done`; errors are raised.

        :func:`ask` blocks (database, embedder and LLM client), so it runs on a worker thread that hands its tokens
        to the event loop; a slow model never blocks other requests. A caller that goes away (tab closed, stream
        disconnected) leaves the queue, or, once admitted, stops the model at its next piece and frees the slot.
        """
        async with contextlib.aclosing(self.gate.wait_turn(asker(q))) as waiting:  # closed with us: leaves the line
            async for ahead in waiting:
                yield Queued(ahead)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        gone = threading.Event()

        def on_token(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        async def run() -> Answer:
            try:
                return await asyncio.to_thread(_answer, self.services, q, on_token, gone.is_set)
            finally:
                self.gate.release()  # only when the model call has ended, even if its caller went away
                loop.call_soon_threadsafe(queue.put_nowait, None)

        job = asyncio.ensure_future(run())
        try:
            while (text := await queue.get()) is not None:
                yield Token(text)
            yield Done(job.result())
        finally:
            if not job.done():  # the caller went away: stop the model, record the turn as cancelled
                gone.set()
                job.add_done_callback(lambda j: j.exception())

    async def answer_async(self, q: Question) -> Answer:
        """The finished answer, for async callers that do not stream."""
        async for item in self.stream(q):
            if isinstance(item, Done):
                return item.answer
        raise RuntimeError("the answer stream ended without an answer")
