"""The chain's streamed answer for async callers (web UI, API, Slack): tokens as they come, then the Answer.

:func:`chat.chain.ask` is synchronous (database, embedder and LLM client all block); it runs on a worker thread
and hands its tokens to the event loop through a queue, so a slow model never blocks other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from chat.chain import Services, ask
from chat.types import Answer, Question


class Busy(Exception):
    """More answers are waiting than the server queues; the caller should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Gate:
    """Admission control for answers: at most ``concurrent`` run, at most ``queued`` wait (each up to ``wait_s``);
    beyond that a request is refused at once with Busy instead of piling up on the database pool and the LLM."""

    def __init__(self, concurrent: int, queued: int, wait_s: float = 120.0) -> None:
        self.concurrent, self.queued, self.wait_s = concurrent, queued, wait_s
        self._slots = asyncio.Semaphore(concurrent)
        self._waiting = 0

    def check(self) -> None:
        """Refuse now (before a response starts) when the queue is full."""
        if self._waiting >= self.queued:
            raise Busy(f"busy: {self.concurrent} answers running and {self._waiting} waiting; retry shortly", 5)

    @asynccontextmanager
    async def slot(self):
        self.check()
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self.wait_s)
        except TimeoutError:
            raise Busy(f"busy: no answer slot freed within {self.wait_s:g} s; retry shortly", 10) from None
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Done:
    answer: Answer


async def stream_answer(services: Services, question: Question, gate: Gate | None = None
                        ) -> AsyncIterator[Token | Done]:
    """Yield :class:`Token` items while the answer streams, then one :class:`Done`; errors are raised (Busy when
    ``gate`` has no room)."""
    if gate is None:
        async for item in _stream(services, question):
            yield item
        return
    async with gate.slot():
        async for item in _stream(services, question):
            yield item


async def _stream(services: Services, question: Question) -> AsyncIterator[Token | Done]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_token(text: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, text)

    async def run() -> Answer:
        try:
            return await asyncio.to_thread(ask, services, question, on_token)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    job = asyncio.ensure_future(run())
    try:
        while (text := await queue.get()) is not None:
            yield Token(text)
        yield Done(job.result())
    finally:
        if not job.done():  # the caller went away: let the turn finish and be recorded, but do not wait for it
            job.add_done_callback(lambda j: j.exception())
