"""The retrieval chain: condense → retrieve (LangChain retriever) → re-rank → numbered sources → LLM → citations.

:func:`ask` is the one entry point the CLI, the chat UI, Slack, the API and the evals call. It streams tokens to
``on_token`` as they arrive and records the turn, successful or failed, before it returns.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from psycopg_pool import ConnectionPool

import prompts
from chat import context
from chat.citations import best_support, check, repair, ungrounded_share
from chat.llm import Endpoint, LLMError
from chat.sampling import Sampling
from chat.turns import RetrievedRecord, history, record_turn
from chat.types import ABSTAIN_TEXT, Answer, Citation, Question
from retrieval import keywords
from retrieval.access import OPERATOR, resolve
from retrieval.embed import Embedder
from retrieval.rerank import Reranker
from retrieval.retriever import CitewiseRetriever, from_lc
from retrieval.settings import Settings
from retrieval.tokens import count
from retrieval.types import Hit

_ABSTAIN = re.compile(r"(sources? (do|does) not (contain|mention|provide|include|say)|not (contained|mentioned|"
                      r"found) in the sources|cannot (find|answer)|no information (about|on)|i don'?t know)", re.I)
_ANSWER_MARGIN = 64  # tokens kept free beside the answer: chat template, role tags, tokenizer drift
_UNGROUNDED = 0.5  # above this share of question terms missing from every source, the answer is not trusted
_MIN_SUPPORT = 0.5  # below this, no answer sentence is backed by any source (see chat.citations.best_support)


@dataclass(frozen=True)
class Services:
    """Long-lived resources a process opens once: database pool, embedder, re-ranker, LLM endpoint."""

    settings: Settings
    pool: ConnectionPool
    embedder: Embedder
    reranker: Reranker
    llm: Endpoint


def chat_model(llm: Endpoint, sampling: Sampling, timeout: float, streaming: bool = True):
    """A LangChain ChatOpenAI for ``sampling``.

    top_k travels as an extra body field (OpenAI itself lacks it), and so does the classic ``max_tokens``: LangChain
    sends ``max_completion_tokens``, which llama.cpp's server ignores.
    """
    from langchain_openai import ChatOpenAI

    extra: dict[str, Any] = {} if "api.openai.com" in llm.base_url else {"top_k": sampling.top_k,
                                                                          "max_tokens": sampling.max_tokens}
    return ChatOpenAI(base_url=llm.base_url, api_key=llm.api_key, model=llm.model, temperature=sampling.temperature,
                      top_p=sampling.top_p, max_tokens=sampling.max_tokens, seed=sampling.seed, extra_body=extra,
                      streaming=streaming, timeout=timeout, max_retries=1)


def condense(services: Services, turns: list[tuple[str, str]], question: str) -> str:
    """A standalone question from the conversation; only called when there is history."""
    lines = "\n".join(f"User: {q}\nAssistant: {a}" for q, a in turns)
    prompt = prompts.load("condense").render(history=lines, question=question)
    model = chat_model(services.llm, Sampling(temperature=0.0, top_k=1, max_tokens=96, seed=0), 60.0, streaming=False)
    text = str(model.invoke([HumanMessage(prompt)]).content).strip().strip('"').splitlines()
    return text[0].strip() if text and text[0].strip() else question


def _records(candidates: list[Hit], reranked: list[Hit]) -> list[RetrievedRecord]:
    after = {h.chunk_id: (i + 1, h.score) for i, h in enumerate(reranked)}
    return [RetrievedRecord(h.chunk_id, h.document_id, i + 1, h.score, *after.get(h.chunk_id, (None, None)))
            for i, h in enumerate(candidates)]


def _budget(services: Services, question: str, sampling: Sampling) -> int:
    cfg = services.settings
    overhead = (count(prompts.load("system").template) + _ANSWER_MARGIN
                + count(prompts.load("answer").render(sources="", question=question)))
    window = cfg.llm.n_ctx - overhead - sampling.max_tokens
    return max(0, min(cfg.answer.context_tokens, window))


def _generate(services: Services, sampling: Sampling, rendered: str, parts: list[str], latency: dict[str, float],
              on_token: Callable[[str], None] | None) -> None:
    """Stream the answer into ``parts`` (kept on failure, for the failed turn's record); time the first token."""
    model = chat_model(services.llm, sampling, services.settings.llm.timeout_s)
    finished = False
    t = time.perf_counter()
    for chunk in model.stream([SystemMessage(prompts.load("system").template), HumanMessage(rendered)]):
        finished = finished or bool(chunk.response_metadata.get("finish_reason"))
        piece = str(chunk.content)
        if piece:
            if not parts:
                latency["first_token_ms"] = (time.perf_counter() - t) * 1000
            parts.append(piece)
            if on_token:
                on_token(piece)
    if not finished:
        raise LLMError("the stream ended before the model finished its answer")


def retrieve(services: Services, conn, query: str, filters: list, n_sources: int,
             latency: dict[str, float]) -> tuple[list[Hit], list[Hit]]:
    """The retrieval half of a turn: fused candidates (LangChain retriever over hybrid search) and the re-ranked
    few. Shared with the eval replay, so a replayed turn is retrieved exactly as a live one."""
    cfg = services.settings
    retriever = CitewiseRetriever(conn=conn, embedder=services.embedder, filters=filters, k=cfg.rerank.fetch,
                                  search=cfg.search)
    candidates = [from_lc(d) for d in retriever.invoke(query)]
    latency.update(retriever.timings)
    t = time.perf_counter()
    reranked = services.reranker.rerank(query, candidates, n_sources * 2)
    latency["rerank_ms"] = (time.perf_counter() - t) * 1000
    return candidates, reranked


def ask(services: Services, q: Question, on_token: Callable[[str], None] | None = None) -> Answer:
    """Answer ``q`` from the corpus with checked citations, streaming tokens to ``on_token``; record the turn."""
    cfg = services.settings
    started = time.perf_counter()
    latency: dict[str, float] = {}
    prompt = prompts.load("answer")
    with services.pool.connection() as conn:
        access = OPERATOR if q.operator else resolve(conn, q.user_id)
        scope = access.as_filter(cfg.public_ungrouped)
        searched = [*q.filters, scope] if scope else list(q.filters)
        # only this user's own turns: a shared thread (Slack) must not carry another reader's answers across
        past = list(q.history) if q.history is not None else history(conn, q.conversation_id, q.user_id)
        standalone = q.text
        if past:
            t = time.perf_counter()
            standalone = condense(services, past, q.text)
            latency["condense_ms"] = (time.perf_counter() - t) * 1000
        n_sources = q.sources or cfg.answer.sources
        candidates, reranked = retrieve(services, conn, standalone, searched, n_sources, latency)
        records = _records(candidates, reranked)
        best = max((h.vector_similarity for h in candidates if h.vector_similarity is not None), default=None)
        sources, block = context.build(reranked, _budget(services, standalone, q.sampling), n_sources)
        shown = tuple(Citation.of(s) for s in sources)

        def finish(text: str, cited: tuple[Citation, ...], abstained: bool, removed: int = 0,
                   prompt_tokens: int | None = None, completion_tokens: int | None = None,
                   auto_cited: int = 0) -> Answer:
            latency["total_ms"] = (time.perf_counter() - started) * 1000
            answer = Answer(text, cited, shown, abstained, None, standalone, prompt.version if prompt_tokens else None,
                            services.llm.model if prompt_tokens else None, removed, latency, prompt_tokens,
                            completion_tokens, auto_cited)
            turn_id = record_turn(conn, q, answer, records, prompt.name if prompt_tokens else None)
            return Answer(**{**answer.__dict__, "turn_id": turn_id})

        if not sources or best is None or best < cfg.answer.min_similarity:
            if on_token:
                on_token(ABSTAIN_TEXT)
            return finish(ABSTAIN_TEXT, (), True)

        rendered = prompt.render(sources=block, question=standalone)
        parts: list[str] = []
        try:
            _generate(services, q.sampling, rendered, parts, latency, on_token)
        except Exception as exc:
            latency["total_ms"] = (time.perf_counter() - started) * 1000
            failed = Answer("".join(parts), (), shown, False, None, standalone, prompt.version, services.llm.model,
                            latency=latency)
            record_turn(conn, q, failed, records, prompt.name, status="failed", error=f"{type(exc).__name__}: {exc}")
            raise LLMError(f"the LLM at {services.llm.base_url} failed: {exc}") from exc
        raw = "".join(parts).strip()
        # a small model sometimes answers and then adds "the sources do not contain the answer": keep the answer
        pieces = re.split(r"((?<=[.!?])\s+|\n\s*\n)", raw)  # sentences/paragraphs at even indexes, separators between
        body = "".join(p for i, p in enumerate(pieces) if i % 2 or not _ABSTAIN.search(p)).strip()
        checked = check(body, len(sources))
        texts = [s.text for s in sources]
        if (len(keywords.terms(body)) < 3
                or ungrounded_share(standalone, body, texts, keywords.terms) > _UNGROUNDED
                or best_support(body, texts, keywords.terms) < _MIN_SUPPORT):
            return finish(ABSTAIN_TEXT, (), True, checked.removed, count(rendered), count(raw))
        mended = repair(checked.text, {s.number: s.text for s in sources}, keywords.terms)
        auto_cited = mended.added + mended.corrected
        if auto_cited:
            checked = check(mended.text, len(sources))
        by_number = {s.number: s for s in sources}
        cited = tuple(Citation.of(by_number[n]) for n in checked.cited)
        return finish(checked.text, cited, False, checked.removed, count(rendered), count(raw), auto_cited)
