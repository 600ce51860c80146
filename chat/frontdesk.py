"""The front desk every door calls: CLI, web UI, JSON API, OpenAI-compatible endpoint, Slack and the evals.

A door turns what it received into a :class:`Request` and hands it over. The desk validates and normalises it
once (length, sampling from a preset plus overrides, filters), resolves the asker's access scope, and admits it
through one process-wide :class:`Gate` before :func:`chat.chain.ask` runs. A rule kept here cannot be forgotten by
a door; a rejection is a :class:`Rejected` whose ``status`` a door maps to its own way of saying no.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg_pool import PoolTimeout

from chat import chain, metrics
from chat.llm import LLMError
from chat.sampling import Sampling, SamplingError, preset
from chat.services import Services
from chat.types import Answer, Question
from core import access, db
from core.settings import DeskSettings, Settings
from retrieval import filters as grammar
from retrieval.clean import plain


class Rejected(ValueError):
    """The desk refused a request; ``status`` is its HTTP meaning (413 too long, 422 invalid, 503 busy)."""

    status = 422

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooLong(Rejected):
    status = 413


class Busy(Rejected):
    """More answers are waiting than the desk queues; retry after ``retry_after`` seconds."""

    status = 503


class Unavailable(Rejected):
    """The database is unreachable (restarting, down): the request can be retried once it is back."""

    status = 503


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


def ask(services: Services, q: Question, on_token: Callable[[str], None] | None = None) -> Answer:
    try:
        with _database():
            answer = chain.ask(services, q, on_token)
    except Unavailable:
        metrics.FAILURES.labels("database").inc()
        raise
    except LLMError:
        metrics.FAILURES.labels("llm").inc()
        raise
    metrics.observe(answer, q.channel)
    return answer


class Gate:
    """Admission control for answers: at most ``concurrent`` run, at most ``queued`` wait (each up to ``wait_s``);
    beyond that a request is refused at once with :class:`Busy` instead of piling up on the LLM.

    Waiters are served first come, first served (a ticket queue): under load no request is overtaken again and
    again, which polling for a free slot allowed (a p95 fourteen times the p50 under 20 users). One gate per
    process serves every door. It is thread-safe, since Slack's listeners and the CLI wait on threads while the
    web doors wait on the event loop (polling, so a waiting request holds no thread).
    """

    def __init__(self, concurrent: int, queued: int, wait_s: float = 120.0) -> None:
        self.concurrent, self.queued, self.wait_s = concurrent, queued, wait_s
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._queue: collections.deque[int] = collections.deque()
        self._tickets = itertools.count()
        self._running = 0

    @classmethod
    def of(cls, cfg: DeskSettings) -> Gate:
        return cls(cfg.max_concurrent_answers, cfg.max_queued_answers, cfg.queue_wait_s)

    @property
    def _waiting(self) -> int:
        return len(self._queue)

    def check(self) -> None:
        """Refuse now (before a response starts) when every slot is taken and the queue is full."""
        if self._running >= self.concurrent and self._waiting >= self.queued:
            metrics.GATE.labels("full").inc()
            raise Busy(f"busy: {self._running} answers running and {self._waiting} waiting; retry shortly", 5)

    def _enter(self) -> int:
        with self._lock:
            self.check()
            ticket = next(self._tickets)
            self._queue.append(ticket)
            return ticket

    def _take(self, ticket: int) -> bool:
        """With the lock held: start ``ticket`` if it is first in line and a slot is free."""
        if self._queue[0] == ticket and self._running < self.concurrent:
            self._queue.popleft()
            self._running += 1
            self._freed.notify_all()  # the next in line may find a slot too
            return True
        return False

    def _leave(self, ticket: int, rejected: bool = True) -> Busy:
        with self._lock:
            self._queue.remove(ticket)
            self._freed.notify_all()
        if rejected:
            metrics.GATE.labels("waited too long").inc()
        return Busy(f"busy: no answer slot freed within {self.wait_s:g} s; retry shortly", 10)

    def acquire(self) -> None:
        """Wait on this thread for a slot; :meth:`release` gives it back."""
        ticket = self._enter()
        deadline = time.monotonic() + self.wait_s
        with self._lock:
            while not self._take(ticket):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._freed.wait(left)
            else:
                return
        raise self._leave(ticket)

    async def acquire_async(self) -> None:
        """Wait on the event loop for a slot."""
        ticket = self._enter()
        deadline = time.monotonic() + self.wait_s
        try:
            while True:
                with self._lock:
                    if self._take(ticket):
                        return
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
        except BaseException:  # cancelled while waiting: give up the place in line
            self._leave(ticket, rejected=False)
            raise
        raise self._leave(ticket)

    def release(self) -> None:
        with self._lock:
            self._running -= 1
            self._freed.notify_all()

    @contextmanager
    def slot(self):
        self.acquire()
        try:
            yield
        finally:
            self.release()


@dataclass(frozen=True)
class Request:
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


def check(req: Request, cfg: Settings) -> Checked:
    """The request's own validation, which needs no database: length, sources, filters, sampling."""
    limit = cfg.desk.max_question_chars
    text = plain(req.text)
    if len(text) > limit:
        raise TooLong(f"the question is {len(text)} characters; the limit is {limit} "
                      "(an admin can raise CITEWISE_MAX_QUESTION_CHARS)")
    if not text.strip():
        raise Rejected("the question is empty")
    if req.sources is not None and not 1 <= req.sources <= 50:
        raise Rejected(f"sources={req.sources} is out of range; expected 1..50")
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

    def _scope(self, req: Request) -> grammar.Scope:
        if req.operator:
            return grammar.EVERYTHING
        with _database():
            return self.scope_of(req.user_id)

    def scope_of(self, user_id: str | None) -> grammar.Scope:
        """The documents ``user_id`` may read (also what a door's welcome lists)."""
        with self.services.pool.connection() as conn:
            who = access.resolve(conn, user_id)
        return grammar.Scope.of(who, self.services.settings.public_ungrouped)

    def prepare(self, req: Request) -> Question:
        """Validate and normalise ``req``, resolve its scope, and refuse at once if the queue is full."""
        ok = check(req, self.services.settings)
        question = Question(text=ok.text, conversation_id=plain(req.conversation_id or str(uuid.uuid4())),
                            channel=req.channel, user_id=req.user_id, scope=self._scope(req), filters=ok.filters,
                            sampling=ok.sampling, sources=req.sources, client_ref=req.client_ref,
                            history=tuple((plain(q), plain(a)) for q, a in req.history) if req.history else req.history)
        self.gate.check()
        return question

    def answer(self, q: Question, on_token: Callable[[str], None] | None = None) -> Answer:
        """Wait for a slot on this thread, then answer (callers on threads: CLI, Slack, evals)."""
        with self.gate.slot():
            return ask(self.services, q, on_token)

    def ask(self, req: Request, on_token: Callable[[str], None] | None = None) -> Answer:
        return self.answer(self.prepare(req), on_token)

    async def stream(self, q: Question) -> AsyncIterator[Token | Done]:
        """Yield :class:`Token` items while the answer streams, then one :class:`Done`; errors are raised.

        :func:`ask` blocks (database, embedder and LLM client), so it runs on a worker thread that hands its tokens
        to the event loop; a slow model never blocks other requests.
        """
        await self.gate.acquire_async()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def on_token(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        async def run() -> Answer:
            try:
                return await asyncio.to_thread(ask, self.services, q, on_token)
            finally:
                self.gate.release()  # only when the answer is done, even if its caller went away
                loop.call_soon_threadsafe(queue.put_nowait, None)

        job = asyncio.ensure_future(run())
        try:
            while (text := await queue.get()) is not None:
                yield Token(text)
            yield Done(job.result())
        finally:
            if not job.done():  # the caller went away: the turn finishes and is recorded, unwaited for
                job.add_done_callback(lambda j: j.exception())

    async def answer_async(self, q: Question) -> Answer:
        """The finished answer, for async callers that do not stream."""
        async for item in self.stream(q):
            if isinstance(item, Done):
                return item.answer
        raise RuntimeError("the answer stream ended without an answer")
