"""What the HTTP routes answer, declared so the served OpenAPI document is a contract a client (or a fuzzer) can
hold the server to: every status a route can return, each with its body's shape.

Errors have one shape on every route, ``{"detail": "..."}``, a sentence naming the problem and the fix; request
validation errors get the same shape (see :func:`validation_error`), with FastAPI's structured list kept under
``errors`` for programs.
"""

from __future__ import annotations

from typing import Any, get_type_hints

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model

from chat.types import Answer, Citation, shown_fields  # frozen dataclasses: pydantic reads their fields


class ErrorOut(BaseModel):
    detail: str = Field(..., description="what was wrong and how to fix it")
    errors: list[dict[str, Any]] | None = Field(None, description="for a 422 on the request's shape: each field")


def _answer_out() -> type[BaseModel]:
    """The API's answer: the answer's SHOWN fields (chat.types.Answer, declared there once) and the conversation."""
    hints = get_type_hints(Answer)
    shown = {name: (hints[f.name], ...) for f, name in shown_fields()}
    return create_model("AnswerOut", **shown, conversation_id=(str, ...))


AnswerOut = _answer_out()


class FeedbackOut(BaseModel):
    feedback_id: int
    turn_id: str
    stored: bool


class HealthOut(BaseModel):
    database: str
    llm: str
    model: str


class SourceOut(BaseModel):
    name: str
    kind: str
    documents: int
    synced_at: str | None
    result: str | None
    counts: dict[str, int]
    next_run: str | None
    seconds: float | None
    # admins only: where the source lives and which files failed, with why
    location: str | None = None
    failures: list[dict[str, str]] | None = None


class ModelOut(BaseModel):
    id: str
    object: str
    created: int
    owned_by: str


class ModelsOut(BaseModel):
    object: str
    data: list[ModelOut]


class ChatMessageOut(BaseModel):
    role: str
    content: str


class ChoiceOut(BaseModel):
    index: int
    finish_reason: str
    message: ChatMessageOut


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionOut(BaseModel):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: UsageOut
    citations: list[Citation]
    citewise: dict[str, Any]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry declaring these error statuses with the one error shape."""
    why = {400: "the body is not valid JSON", 401: "no or unknown bearer token", 404: "no such turn of yours",
           413: "the question is too long",
           422: "the request is malformed or a value is out of range",
           429: "this caller already has as many questions waiting as one caller may (see Retry-After)",
           502: "the answer failed (the LLM or the database)", 503: "at capacity (see Retry-After) or unavailable"}
    return {s: {"model": ErrorOut, "description": why[s]} for s in statuses}


def streamed(model: type[BaseModel], what: str, events: tuple[str, ...] = ()) -> dict[int | str, dict[str, Any]]:
    """A 200 that is JSON, or server-sent events when the request asks to stream: each event's ``data`` is one
    JSON document (the OpenAI stream ends with ``[DONE]``); ``events`` names the ``event:`` kinds sent, if any."""
    event: dict[str, Any] = {"type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}
    if events:
        event["properties"]["event"] = {"type": "string", "enum": list(events)}
        event["required"].append("event")
    return {200: {"model": model, "description": f"{what}; with streaming asked for, server-sent events",
                  "content": {"text/event-stream": {"schema": event}}}}


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


async def database_lost(_: Request, exc: Exception) -> JSONResponse:
    """Any route whose database went away mid-request (a restart): 503 with Retry-After, never a 500."""
    from chat.desk.frontdesk import unavailable

    gone = unavailable(exc)
    return JSONResponse({"detail": str(gone)}, status_code=503, headers={"Retry-After": str(gone.retry_after)})


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """A 422 in the one error shape: each problem named by its field, FastAPI's list kept under ``errors``."""
    problems = exc.errors()
    detail = "; ".join(f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in problems)
    listed = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in problems]
    return JSONResponse({"detail": f"invalid request: {detail}", "errors": listed}, status_code=422)
