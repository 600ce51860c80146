"""The chain's streamed answer for async callers (web UI, API, Slack): tokens as they come, then the Answer.

:func:`chat.chain.ask` is synchronous (database, embedder and LLM client all block); it runs on a worker thread
and hands its tokens to the event loop through a queue, so a slow model never blocks other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from chat.chain import Services, ask
from chat.types import Answer, Question


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Done:
    answer: Answer


async def stream_answer(services: Services, question: Question) -> AsyncIterator[Token | Done]:
    """Yield :class:`Token` items while the answer streams, then one :class:`Done`; errors are raised."""
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
