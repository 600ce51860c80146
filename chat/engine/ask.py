"""The answer pipeline: condense → retrieve → build context → generate → verify → record.

Each stage is its own module with one typed entry point; frozen dataclasses pass between them, and :func:`ask`
only composes them. The model's tokens go through verification before any reach ``on_token``: a caller sees
only sentences that passed the same checks as the final answer, which is exactly what was streamed. No database
connection is held while the model generates. Doors never call this directly:
they go through the front desk (chat.desk.frontdesk), which validates the request, resolves the asker's scope and
takes an admission slot first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chat.engine import meaning, quotes
from chat.engine.condense import condense
from chat.engine.context import Context, build_context
from chat.engine.generate import GenerationError, generate
from chat.engine.llm import LLMError
from chat.engine.record import record, record_failed
from chat.engine.retrieve import retrieve
from chat.engine.services import Services
from chat.engine.verify import SentenceStream, abstention
from chat.types import ABSTAIN_TEXT, Answer, Question
from core.settings import Settings


class Cancelled(RuntimeError):
    """The asker went away while the answer was being written; the turn is recorded as failed, with this reason."""


def _verifier(cfg: Settings, ctx: Context, question: str, on_token: Callable[[str], None] | None,
              managed: bool) -> tuple[SentenceStream, str | None]:
    """The stream that checks the reply, and the grammar its form needs: with quotes behind claims, a grammar
    holds each quote to the sources' sentences where the server takes one (the managed llama.cpp server)."""
    stream = quotes.QuoteStream if cfg.answer.quotes else SentenceStream
    checker = stream(ctx.sources, question, cfg.verify, ctx.system, on_token, ctx.planted,
                     meaning=meaning.for_settings(cfg.verify))
    return checker, quotes.grammar(ctx.sources) if cfg.answer.quotes and managed else None


def ask(services: Services, q: Question, on_token: Callable[[str], None] | None = None,
        stop: Callable[[], bool] | None = None) -> Answer:
    """Answer ``q`` with checked citations, streaming verified sentences to ``on_token``; record the turn.
    ``stop`` is asked before each piece the model writes: when it says yes, the model call ends there (its slot
    is free as soon as the model's next piece arrives, not before: retrieval and prompt processing finish first)
    and :class:`Cancelled` is raised."""
    cfg, started = services.settings, time.perf_counter()
    standalone = condense(services, q)
    n_sources = q.sources or cfg.answer.sources
    found = retrieve(services, standalone.question, q.scope, q.filters, n_sources)
    ctx = build_context(found, q.sampling, n_sources, cfg.answer, cfg.llm.n_ctx)
    if ctx.abstain_reason:
        if on_token:
            on_token(ABSTAIN_TEXT)
        return record(services, q, found, ctx, abstention(ctx.abstain_reason), None, standalone.condense_ms, started)
    llm = services.model()
    verified, grammar = _verifier(cfg, ctx, standalone.question, on_token, llm.managed)

    def feed(piece: str) -> None:
        if stop is not None and stop():
            raise Cancelled("the asker went away; the answer was stopped")
        verified.feed(piece)

    try:
        generated = generate(llm, q.sampling, ctx.system, ctx.prompt, cfg.llm.timeout_s, feed, grammar)
    except GenerationError as exc:
        record_failed(services, q, found, ctx, exc, standalone.condense_ms, started)
        if isinstance(exc.__cause__, Cancelled):
            raise exc.__cause__ from None
        if llm.managed:
            raise LLMError(f"the local LLM stopped while answering ({exc}); it is started again for the next "
                           "question") from exc
        raise LLMError(f"the LLM at {llm.base_url} failed: {exc}") from exc
    return record(services, q, found, ctx, verified.close(), generated, standalone.condense_ms, started)
