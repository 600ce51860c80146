"""Stage: record. The turn, answered or failed, with everything needed to trace and replay it; its own short
database connection, taken after generation."""

from __future__ import annotations

import time
from dataclasses import replace

from chat.engine.context import Context
from chat.engine.generate import Generated, GenerationError
from chat.engine.retrieve import Retrieved
from chat.engine.services import Services
from chat.engine.verify import Verified
from chat.turns.store import record_turn
from chat.types import ABSTAIN_TEXT, Answer, Question


def _latency(found: Retrieved, condense_ms: float | None, first_token_ms: float | None, started: float,
             first_verified_ms: float | None = None) -> dict[str, float]:
    """Stage timings; ``first_token_ms`` and ``first_verified_ms`` count from the start of generation."""
    latency = dict(found.timings)
    for name, value in (("condense_ms", condense_ms), ("first_token_ms", first_token_ms),
                        ("first_verified_ms", first_verified_ms)):
        if value is not None:
            latency[name] = value
    latency["total_ms"] = (time.perf_counter() - started) * 1000
    return latency


def record(services: Services, q: Question, found: Retrieved, ctx: Context, checked: Verified,
           generated: Generated | None, condense_ms: float | None, started: float) -> Answer:
    """The answer as returned to the door, after its turn is committed."""
    by_number = {s.number: s for s in ctx.sources}
    asked = generated is not None
    answer = Answer(
        text=ABSTAIN_TEXT if checked.abstained else checked.text,
        citations=tuple(by_number[n].citation() for n in checked.cited),
        sources=tuple(s.citation() for s in ctx.sources), abstained=checked.abstained, turn_id=None,
        standalone_question=found.query, prompt_version=ctx.prompt_version if asked else None,
        model=services.llm.model if asked else None, removed_markers=checked.removed_markers,
        latency=_latency(found, condense_ms, generated.first_token_ms if generated else None, started,
                         checked.first_verified_ms),
        prompt_tokens=generated.prompt_tokens if generated else None,
        completion_tokens=generated.completion_tokens if generated else None, auto_cited=checked.auto_cited,
        abstain_reason=checked.abstain_reason, dropped=checked.dropped,
        model_output=generated.text if generated else None, model_cited=checked.model_cited,
        retriever_version=found.retriever_version, best_similarity=found.best_similarity)
    with services.pool.connection() as conn:
        turn_id = record_turn(conn, q, answer, found.records(), ctx.prompt_name if asked else None)
    return replace(answer, turn_id=turn_id)


def record_failed(services: Services, q: Question, found: Retrieved, ctx: Context, exc: GenerationError,
                  condense_ms: float | None, started: float) -> None:
    """A turn whose model call failed: what it streamed, and the error, so no half answer goes unrecorded."""
    failed = Answer(text=exc.partial, citations=(), sources=tuple(s.citation() for s in ctx.sources), abstained=False,
                    turn_id=None, standalone_question=found.query, prompt_version=ctx.prompt_version,
                    model=services.llm.model, latency=_latency(found, condense_ms, None, started),
                    retriever_version=found.retriever_version)
    with services.pool.connection() as conn:
        record_turn(conn, q, failed, found.records(), ctx.prompt_name, status="failed",
                    error=f"{type(exc.__cause__ or exc).__name__}: {exc}")
