"""Stage: generate. Stream the model's answer to a rendered prompt over the OpenAI protocol (any endpoint)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from chat.engine.llm import Endpoint
from chat.sampling import Sampling
from retrieval.tokens import count


class GenerationError(RuntimeError):
    """The model failed mid-answer; ``partial`` holds what it had streamed (kept on the failed turn's record)."""

    def __init__(self, message: str, partial: str) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class Generated:
    text: str  # the model's raw answer, stripped
    first_token_ms: float | None
    prompt_tokens: int
    completion_tokens: int


def chat_model(llm: Endpoint, sampling: Sampling, timeout: float, streaming: bool = True, grammar: str | None = None):
    """A LangChain ChatOpenAI for ``sampling``.

    top_k travels as an extra body field (OpenAI itself lacks it), and so does the classic ``max_tokens``: LangChain
    sends ``max_completion_tokens``, which llama.cpp's server ignores. ``grammar`` (GBNF, llama.cpp's field)
    constrains the reply.
    """
    from langchain_openai import ChatOpenAI

    extra: dict[str, Any] = {} if "api.openai.com" in llm.base_url else {"top_k": sampling.top_k,
                                                                          "max_tokens": sampling.max_tokens}
    if grammar:
        extra["grammar"] = grammar
    return ChatOpenAI(base_url=llm.base_url, api_key=llm.api_key, model=llm.model, temperature=sampling.temperature,
                      top_p=sampling.top_p, max_tokens=sampling.max_tokens, seed=sampling.seed, extra_body=extra,
                      streaming=streaming, timeout=timeout, max_retries=1)


def generate(llm: Endpoint, sampling: Sampling, system: str, prompt: str, timeout_s: float,
             on_token: Callable[[str], None] | None = None, grammar: str | None = None) -> Generated:
    """Stream the answer, passing each piece to ``on_token``; raise :class:`GenerationError` if the stream fails
    or ends before the model says it finished."""
    model = chat_model(llm, sampling, timeout_s, grammar=grammar)
    parts: list[str] = []
    first: float | None = None
    finished = False
    t = time.perf_counter()
    try:
        for chunk in model.stream([SystemMessage(system), HumanMessage(prompt)]):
            finished = finished or bool(chunk.response_metadata.get("finish_reason"))
            piece = str(chunk.content)
            if piece:
                if first is None:
                    first = (time.perf_counter() - t) * 1000
                parts.append(piece)
                if on_token:
                    on_token(piece)
    except Exception as exc:
        raise GenerationError(str(exc), "".join(parts)) from exc
    if not finished:
        raise GenerationError("the stream ended before the model finished its answer", "".join(parts))
    raw = "".join(parts).strip()
    return Generated(raw, first, count(prompt), count(raw))
