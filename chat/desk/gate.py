"""Admission control: one gate per process, shared by every door, so the LLM is never asked for more answers than it
can write at once and a queue that cannot be served in time is refused early (503 with Retry-After)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
from contextlib import contextmanager

from chat import telemetry
from chat.desk.refusals import Busy
from core.settings import DeskSettings


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

    def refuse_if_full(self) -> None:
        """Refuse now (before a response starts) when every slot is taken and the queue is full."""
        if self._running >= self.concurrent and self._waiting >= self.queued:
            telemetry.GATE.labels("full").inc()
            raise Busy(f"busy: {self._running} answers running and {self._waiting} waiting; retry shortly", 5)

    def _enter(self) -> int:
        with self._lock:
            self.refuse_if_full()
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
            telemetry.GATE.labels("waited too long").inc()
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
