"""An OpenAI-compatible ``POST /v1/chat/completions`` (and ``GET /v1/models``): any OpenAI client can chat with
the corpus. The last user message is the question, earlier user/assistant pairs are the history; the reply's text
ends with its numbered sources, and the structured citations ride along in a ``citations`` field."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from chat.api.routes import Caller, Desk, admit, answer_whole
from chat.api.schema import ChatCompletionOut, ModelsOut, errors, streamed
from chat.desk.frontdesk import AskRequest, Queued, Token
from chat.types import Answer

MODEL = "citewise"
_FOOTER = "\n\nSources:\n"


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send many optional fields; unknown ones are ignored
    model: str | None = None
    messages: list[Message] = Field(..., min_length=1)
    stream: bool = False
    temperature: StrictFloat | None = None
    top_p: StrictFloat | None = None
    top_k: StrictInt | None = None
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    seed: StrictInt | None = None  # a JSON true/false is not a number


def footer(answer: Answer) -> str:
    listed = answer.citations or (answer.sources if answer.abstained else ())
    if not listed:
        return ""
    title = "Closest sources (they do not answer the question):\n" if answer.abstained else ""
    return _FOOTER + title + "\n".join(f"[{c.number}] {c.title} — {c.source} ({c.uri})" for c in listed)


def _history(messages: list[Message]) -> tuple[tuple[str, str], ...]:
    pairs, pending = [], None
    for m in messages:
        if m.role == "user":
            pending = m.text()
        elif m.role == "assistant" and pending is not None:
            pairs.append((pending, m.text().split(_FOOTER, 1)[0]))
            pending = None
    return tuple(pairs)  # the desk keeps the last CITEWISE_HISTORY_TURNS of them


def request_of(body: ChatIn, who: str) -> AskRequest:
    if body.messages[-1].role != "user":
        raise HTTPException(422, "the last message must be the user's question (role 'user')")
    return AskRequest(text=body.messages[-1].text(), channel="api", user_id=who,
                      conversation_id=f"openai:{who}:{uuid.uuid4()}", temperature=body.temperature, top_p=body.top_p,
                      top_k=body.top_k, max_tokens=body.max_tokens or body.max_completion_tokens, seed=body.seed,
                      history=_history(body.messages[:-1]))


def _extras(answer: Answer) -> dict[str, Any]:
    return {"citations": [c.to_json() for c in answer.citations],
            "citewise": {"turn_id": answer.turn_id, "abstained": answer.abstained}}


router = APIRouter(prefix="/v1", tags=["openai-compatible"])


@router.get("/models", summary="The one model this endpoint serves", response_model=ModelsOut)
def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "citewise"}]}


@router.post("/chat/completions", summary="OpenAI-compatible chat over the corpus, citations included",
             response_model=ChatCompletionOut,
             responses={**streamed(ChatCompletionOut, "the completion"), **errors(400, 401, 413, 422, 429, 502, 503)})
async def chat_completions(body: ChatIn, who: Caller, desk: Desk):
    question = await admit(desk, request_of(body, who))
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if not body.stream:
        answer = await answer_whole(desk, question)
        prompt, completion = answer.prompt_tokens or 0, answer.completion_tokens or 0
        return {"id": cid, "object": "chat.completion", "created": created, "model": MODEL,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer.text + footer(answer)}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion},
                **_extras(answer)}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        try:
            async for item in desk.stream(question):
                if isinstance(item, Queued):  # an SSE comment: OpenAI clients skip it, a person reading sees it
                    yield f": queued, {item.ahead} ahead\n\n".encode()
                elif isinstance(item, Token):  # verified sentences: together they are the final answer's text
                    yield chunk({"content": item.text})
                else:
                    yield chunk({"content": footer(item.answer)}, **_extras(item.answer))
        except Exception as exc:
            yield chunk({"content": f"\n\n[citewise: the answer failed: {exc}]"})
        yield chunk({}, "stop")
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
