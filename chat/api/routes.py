"""The JSON HTTP API: ask (plain or server-sent events), feedback, health.

Every route checks its body's shape (unknown fields get a 422), identifies the caller (a bearer token when tokens
are configured) and hands the question to the front desk, which validates it (length, sampling, filters), scopes
it to the caller and admits it; a desk rejection becomes its HTTP status with the desk's message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from chat.api.schema import AnswerOut, FeedbackOut, HealthOut, SourceOut, errors, streamed
from chat.desk.frontdesk import SHARED_API_CALLER, AskRequest, FrontDesk, Queued, Rating, Rejected, Token
from chat.engine.services import Services
from chat.types import Answer, Question
from core import access
from core.settings import SettingsError
from retrieval import sources as synced


class SamplingIn(BaseModel):
    # strict: a JSON true/false is not a number (lax parsing read "seed": false as seed 0; schemathesis found it)
    model_config = ConfigDict(extra="forbid", strict=True)
    preset: str | None = Field(None, description="precise, balanced or creative (default: the server's)")
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    seed: int | None = None


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(..., min_length=1)
    filters: list[str] = Field(default_factory=list, description="FIELD OP VALUE, e.g. 'source = handbook'")
    sampling: SamplingIn = Field(default_factory=SamplingIn)
    sources: int | None = Field(None, description="number of numbered sources given to the model: 1 to "
                                "CITEWISE_MAX_SOURCES (20 unless configured); the front desk checks it")
    conversation_id: str | None = Field(None, max_length=200, description="continue this conversation")


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    turn_id: uuid.UUID
    value: Literal["up", "down"]
    comment: str | None = Field(None, max_length=4000)
    citation: int | None = Field(None, ge=1)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(spec: str | None) -> dict[str, str]:
    """``name:token,...`` → {sha256(token): name}; only digests are kept in memory."""
    out: dict[str, str] = {}
    for item in (spec or "").split(","):
        name, sep, token = item.strip().partition(":")
        if item.strip() and (not sep or not name or len(token) < 16):
            raise SettingsError(f"CITEWISE_API_TOKENS: entry {name or item!r} needs NAME:TOKEN with a token of at "
                             "least 16 characters")
        if sep:
            out[token_digest(token)] = name
    return out


def services_of(request: Request) -> Services:
    return request.app.state.desk.services


def desk_of(request: Request) -> FrontDesk:
    return request.app.state.desk


def refused(exc: Rejected) -> HTTPException:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return HTTPException(exc.status, str(exc), headers=headers)


def caller(request: Request) -> str:
    """The caller's name: from its bearer token when tokens are configured, else ``api``."""
    tokens = request.app.state.api_tokens
    if not tokens:
        return SHARED_API_CALLER
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    name = tokens.get(token_digest(token.strip())) if scheme.lower() == "bearer" else None
    if name is None:
        raise HTTPException(401, "missing or unknown bearer token (Authorization: Bearer TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})
    return name


Caller = Annotated[str, Depends(caller)]
Svc = Annotated[Services, Depends(services_of)]
Desk = Annotated[FrontDesk, Depends(desk_of)]


async def admit(desk: FrontDesk, req: AskRequest) -> Question:
    """The desk's validated question, or the HTTP error that says why not (before any response starts)."""
    try:
        return await asyncio.to_thread(desk.receive, req)
    except Rejected as exc:
        raise refused(exc) from None


def public(answer_json: dict[str, Any], conversation_id: str) -> dict[str, Any]:
    return {**answer_json, "conversation_id": conversation_id.split(":", 2)[-1]}


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def answer_whole(desk: FrontDesk, question: Question) -> Answer:
    """The finished answer (for callers that do not stream); 503 when busy, 502 when the chain fails."""
    try:
        return await desk.answer_async(question)
    except Rejected as exc:
        raise refused(exc) from None
    except Exception as exc:
        raise HTTPException(502, f"the answer failed: {exc}") from None


router = APIRouter(prefix="/v1", tags=["citewise"])


@router.post("/ask", summary="Answer a question from the documents, with citations", response_model=AnswerOut,
             responses={**streamed(AnswerOut, "the answer", ("queue_position", "token", "answer", "error")),
                        **errors(400, 401, 413, 422, 429, 502, 503)})
async def ask_route(body: AskIn, who: Caller, desk: Desk, stream: bool = False):
    """``?stream=true`` answers with server-sent events: ``queue_position`` events while the question waits for a
    slot (``{"ahead": N}``, again whenever N changes), ``token`` events, then one ``answer`` (or ``error``). When
    the server is at capacity: 503 with Retry-After; when this caller already has as many questions waiting as one
    caller may: 429 with Retry-After. A streamed request that disconnects leaves the queue, or stops its answer at
    the model's next piece and frees the slot."""
    s = body.sampling
    # conversations are namespaced by caller, so nobody continues (or reads the history of) another's conversation
    question = await admit(desk, AskRequest(
        text=body.question, channel="api", user_id=who,
        conversation_id=f"api:{who}:{body.conversation_id or uuid.uuid4()}", filters=tuple(body.filters),
        preset=s.preset, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, max_tokens=s.max_tokens,
        seed=s.seed, sources=body.sources))
    if not stream:
        answer = await answer_whole(desk, question)
        return public(answer.to_json(), question.conversation_id)

    async def events() -> AsyncIterator[bytes]:
        try:
            async for item in desk.stream(question):
                if isinstance(item, Queued):
                    yield sse("queue_position", {"ahead": item.ahead})
                elif isinstance(item, Token):
                    yield sse("token", {"text": item.text})
                else:
                    yield sse("answer", public(item.answer.to_json(), question.conversation_id))
        except Exception as exc:
            yield sse("error", {"detail": f"the answer failed: {exc}"})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.post("/feedback", summary="Thumbs up or down on an answer, with an optional comment",
             response_model=FeedbackOut, responses=errors(400, 401, 404, 422, 503))
def feedback_route(body: FeedbackIn, who: Caller, desk: Desk) -> dict[str, Any]:
    try:
        fid = desk.rate(Rating(turn_id=str(body.turn_id), value=body.value, user_id=who, channel="api",
                               comment=body.comment, citation=body.citation))
    except Rejected as exc:
        raise refused(exc) from None
    return {"feedback_id": fid, "turn_id": str(body.turn_id), "stored": True}


@router.get("/sources", summary="Every synced source's state: last sync, result, counts, next run",
            response_model=list[SourceOut], responses=errors(401))
def sources_route(who: Caller, services: Svc) -> list[dict[str, Any]]:
    """Admins (by token) also see each source's folder and its failing files; other callers see the state only,
    since paths and file names can say more than the documents they may read."""
    with services.pool.connection() as conn:
        rows = synced.listing(conn)
        admin = who != SHARED_API_CALLER and access.resolve(conn, who).admin
    keep = ("name", "kind", "documents", "result", "counts", "seconds") + (("location", "failures") if admin else ())
    return [{**{k: r[k] for k in keep}, "synced_at": r["synced_at"] and r["synced_at"].isoformat(),
             "next_run": r["next_run"] and r["next_run"].isoformat()} for r in rows]


@router.get("/health", summary="Database and LLM status", response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "the database or the LLM is unavailable"}})
async def health(services: Svc) -> JSONResponse:
    report: dict[str, Any] = {"database": "ok", "llm": "ok", "model": services.llm.model}
    try:
        with services.pool.connection(timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        report["database"] = f"unavailable: {type(exc).__name__}"
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            r = await client.get(f"{services.llm.base_url.rstrip('/')}/models",
                                 headers={"Authorization": f"Bearer {services.llm.api_key}"})
            if r.status_code >= 400:
                report["llm"] = f"unavailable: HTTP {r.status_code}"
    except httpx.HTTPError as exc:
        report["llm"] = f"unavailable: {type(exc).__name__}"
    ok = report["database"] == "ok" and report["llm"] == "ok"
    return JSONResponse(report, status_code=200 if ok else 503)
