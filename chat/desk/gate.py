"""Admission control: one gate per process, shared by every door, so the LLM is never asked for more answers than it
can write at once, one asker's burst never starves the others, and a queue that cannot be served in time is refused
early (503 with Retry-After; 429 for one asker over their own limit)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import contextmanager

from chat import telemetry
from chat.desk.refusals import Busy, TooMany
from core.settings import DeskSettings


class Gate:
    """Admission control for answers: at most ``concurrent`` run, at most ``queued`` wait (each up to ``wait_s``),
    at most ``per_asker`` of them from one asker; beyond that a request is refused at once instead of piling up on
    the LLM.

    Waiting is fair between askers: each asker (a user, or a door for anonymous callers) has a line of their own,
    served in arrival order, and a free slot goes to the waiting asker who has been served least since the gate
    was last idle (ties: the earlier question). A script that queues ten questions delays someone else's one
    question by at most the answer already running, where one line in arrival order made them wait for all ten;
    counting what each asker was served, not only taking turns, keeps a script whose line emptied for a moment
    (its first question went straight in) from going first again (measured: round robin alone left a person
    waiting for two of the script's answers). Within a line no question is overtaken, which polling for a free
    slot allowed (a p95 fourteen times the p50 under 20 users). Thread-safe, since Slack's listeners and the CLI
    wait on threads while the web doors wait on the event loop (polling, so a waiting request holds no thread).
    """

    def __init__(self, concurrent: int, queued: int, wait_s: float = 120.0, per_asker: int = 10) -> None:
        self.concurrent, self.queued, self.wait_s, self.per_asker = concurrent, queued, wait_s, per_asker
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._lines: dict[str, collections.deque[int]] = {}  # each asker's waiting tickets, in arrival order
        self._served: collections.Counter[str] = collections.Counter()  # admitted since the gate was last idle
        self._owner: dict[int, str] = {}
        self._tickets = itertools.count()
        self._running = 0

    @classmethod
    def of(cls, cfg: DeskSettings) -> Gate:
        return cls(cfg.max_concurrent_answers, cfg.max_queued_answers, cfg.queue_wait_s, cfg.max_queued_per_asker)

    @property
    def _waiting(self) -> int:
        return len(self._owner)

    def refuse_if_full(self, asker: str = "") -> None:
        """Refuse now (before a response starts) when every slot is taken and the queue is full, or when ``asker``
        already has as many questions waiting as one asker may."""
        if self._running >= self.concurrent and self._waiting >= self.queued:
            telemetry.GATE.labels("full").inc()
            raise Busy(f"busy: {self._running} answers running and {self._waiting} waiting; retry shortly", 5)
        mine = len(self._lines.get(asker, ()))
        if mine >= self.per_asker and not asker.startswith("door:"):  # a door (anonymous callers) is many people
            telemetry.GATE.labels("asker limit").inc()
            raise TooMany(f"you already have {mine} questions waiting, the most one asker may have "
                          f"(CITEWISE_MAX_QUEUED_PER_ASKER={self.per_asker}); ask again when one is answered", 10)

    def _enter(self, asker: str) -> int:
        with self._lock:
            self.refuse_if_full(asker)
            ticket = next(self._tickets)
            if self._running == 0 and not self._lines:
                self._served.clear()  # the gate was idle: a new busy period, in which nobody has been served yet
            self._lines.setdefault(asker, collections.deque()).append(ticket)
            self._owner[ticket] = asker
            self._freed.notify_all()  # a newcomer's line may go ahead of waiters' later questions: they re-count
            return ticket

    def _next(self, served: collections.Counter[str], heads: dict[str, int]) -> str:
        return min(heads, key=lambda a: (served[a], self._lines[a][heads[a]]))

    def _order(self) -> list[int]:
        """Every waiting ticket in the order the gate will admit it, if nobody else arrives (with the lock held)."""
        served, heads, order = collections.Counter(self._served), dict.fromkeys(self._lines, 0), []
        while heads:
            asker = self._next(served, heads)
            order.append(self._lines[asker][heads[asker]])
            served[asker] += 1
            heads[asker] += 1
            if heads[asker] == len(self._lines[asker]):
                del heads[asker]
        return order

    def _take(self, ticket: int) -> bool:
        """With the lock held: start ``ticket`` if it is the one to go next and a slot is free."""
        if self._running >= self.concurrent or not self._lines:
            return False
        asker = self._next(self._served, dict.fromkeys(self._lines, 0))
        if self._lines[asker][0] != ticket:
            return False
        self._lines[asker].popleft()
        if not self._lines[asker]:
            del self._lines[asker]
        self._served[asker] += 1
        del self._owner[ticket]
        self._running += 1
        self._freed.notify_all()  # the next in line may find a slot too
        return True

    def _leave(self, ticket: int, rejected: bool = True) -> Busy:
        with self._lock:
            asker = self._owner.pop(ticket, None)
            if asker is not None:
                self._lines[asker].remove(ticket)
                if not self._lines[asker]:
                    del self._lines[asker]
            self._freed.notify_all()
        if rejected:
            telemetry.GATE.labels("waited too long").inc()
        return Busy(f"busy: no answer slot freed within {self.wait_s:g} s; retry shortly", 10)

    def acquire(self, asker: str = "", on_position: Callable[[int], None] | None = None) -> None:
        """Wait on this thread for a slot; :meth:`release` gives it back. ``on_position`` hears the number of
        questions ahead whenever it changes while waiting."""
        ticket = self._enter(asker)
        deadline = time.monotonic() + self.wait_s
        told = -1
        try:
            with self._lock:
                while not self._take(ticket):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    if on_position is not None and (ahead := self._order().index(ticket)) != told:
                        told = ahead
                        self._lock.release()  # the listener may post to Slack: never with the lock held
                        try:
                            on_position(ahead)
                        except Exception:  # a notice that failed to post (Slack rate-limited) costs no place
                            telemetry.GATE.labels("position notice failed").inc()
                        finally:
                            self._lock.acquire()
                        continue
                    self._freed.wait(min(left, 1.0))
                else:
                    return
        except BaseException:  # interrupted while waiting: the ticket must not stay at the head of a line
            self._leave(ticket, rejected=False)
            raise
        raise self._leave(ticket)

    async def wait_turn(self, asker: str = "") -> AsyncIterator[int]:
        """Wait on the event loop for a slot, yielding the number of questions ahead whenever it changes; the
        iteration ends when the slot is taken. Leaving early (the asker went away) gives up the place in line."""
        ticket = self._enter(asker)
        deadline = time.monotonic() + self.wait_s
        told = -1
        try:
            while True:
                with self._lock:
                    if self._take(ticket):
                        return
                    ahead = self._order().index(ticket)
                if ahead != told:
                    told = ahead
                    yield ahead
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
        except BaseException:  # cancelled or closed while waiting: give up the place in line
            self._leave(ticket, rejected=False)
            raise
        raise self._leave(ticket)

    async def acquire_async(self, asker: str = "") -> None:
        """Wait on the event loop for a slot, without hearing the position."""
        async for _ in self.wait_turn(asker):
            pass

    def release(self) -> None:
        with self._lock:
            self._running -= 1
            self._freed.notify_all()

    @contextmanager
    def slot(self, asker: str = "", on_position: Callable[[int], None] | None = None):
        self.acquire(asker, on_position)
        try:
            yield
        finally:
            self.release()
