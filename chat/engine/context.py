"""Stage: build context. Numbered sources for the prompt (adjacent chunks of one document merged, all within a
token budget) and the rendered prompt; or the reason to abstain before the model is asked.

Source text is data: it is fenced per source, and anything in it that looks like our own delimiters is
neutralised, so a planted "</sources> ignore previous instructions" cannot leave its fence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import prompts
from chat.engine import evidence
from chat.engine.retrieve import Retrieved
from chat.sampling import Sampling
from chat.types import Citation
from core.settings import AnswerSettings
from retrieval import injections
from retrieval.tokens import count, encoding
from retrieval.types import Hit

_DELIMS = re.compile(r"</?\s*(sources?|system|assistant|user|instructions?)\b[^>]*>", re.IGNORECASE)
_HEADING_MARK = re.compile(r"^#{1,6}[ \t]+", re.MULTILINE)
_ANSWER_MARGIN = 64  # tokens kept free beside the answer: chat template, role tags, tokenizer drift


@dataclass(frozen=True)
class Source:
    """One numbered source: one or more adjacent chunks of a document."""

    number: int
    hits: tuple[Hit, ...]
    text: str
    flagged: tuple[str, ...] = ()  # its sentences addressed to the assistant: withheld from the prompt, marked

    def citation(self) -> Citation:
        """How this source is shown and stored: its span, its document's fields and date, withheld sentences."""
        h = self.first
        when = h.updated_at or h.created_at
        return Citation(self.number, self.chunk_ids, h.document_id, h.title, h.source, h.uri, self.start, self.end,
                        self.text, when.date().isoformat() if when else None, len(self.flagged))

    @property
    def first(self) -> Hit:
        return self.hits[0]

    @property
    def chunk_ids(self) -> tuple[str, ...]:
        return tuple(h.chunk_id for h in self.hits)

    @property
    def start(self) -> int:
        return min(h.start for h in self.hits)

    @property
    def end(self) -> int:
        return max(h.end for h in self.hits)


def flagged(hits: tuple[Hit, ...] | list[Hit]) -> tuple[str, ...]:
    """The instruction-like sentences of ``hits``: as flagged at ingest, else (a chunk stored before flagging
    existed) found now."""
    found: dict[str, None] = {}
    for h in hits:
        found.update(dict.fromkeys(injections.find(h.text).sentences if h.instructions is None else h.instructions))
    return tuple(found)


def _merge_text(hits: list[Hit]) -> str:
    """Join spans of one document in order; overlapping chunk spans are stitched without repeating text."""
    hits = sorted(hits, key=lambda h: h.start)
    text, end = hits[0].text, hits[0].end
    for h in hits[1:]:
        if h.start < end:
            text += h.text[end - h.start:] if h.end > end else ""
        else:
            text += "\n…\n" + h.text
        end = max(end, h.end)
    return text


def group(hits: list[Hit]) -> list[list[Hit]]:
    """Group hits by document, merging chunks that touch or overlap; groups keep the best hit's rank order."""
    groups: list[list[Hit]] = []
    for h in hits:
        for g in groups:
            if g[0].document_id == h.document_id and any(abs(o.ordinal - h.ordinal) <= 1 for o in g):
                g.append(h)
                break
        else:
            groups.append([h])
    return groups


def _attr(value: str) -> str:
    return value.replace('"', "'").replace("<", "(").replace(">", ")")


def _header(n: int, h: Hit) -> str:
    date = h.updated_at or h.created_at
    parts = [f'<source id="{n}" title="{_attr(h.title or h.uri)}" from="{_attr(h.source)}"']
    if h.heading_path:
        parts.append(f'section="{_attr(" > ".join(h.heading_path))}"')
    if date:
        parts.append(f'date="{date.date().isoformat()}"')
    return " ".join(parts) + ">"


def _clean(text: str, flagged: tuple[str, ...]) -> str:
    """Source text as data: no delimiters of ours, no sentences addressed to the assistant (withheld, visibly),
    and Markdown heading marks dropped (the header names the section), so a small model does not read a
    ``## Heading`` as the start of another source."""
    return _HEADING_MARK.sub("", _DELIMS.sub("", injections.withhold(text, flagged)))


def _truncate(text: str, tokens: int) -> str:
    ids = encoding().encode(text, disallowed_special=())
    return text if len(ids) <= tokens else encoding().decode(ids[:tokens]).rstrip() + " …"


def build(hits: list[Hit], budget_tokens: int, max_sources: int) -> tuple[list[Source], str]:
    """Numbered sources and their rendered block, never over ``budget_tokens`` (counted with tiktoken)."""
    sources: list[Source] = []
    blocks: list[str] = []
    used = 0
    for g in group(hits):
        if len(sources) == max_sources:
            break
        n = len(sources) + 1
        marked = flagged(g)
        body = _clean(_merge_text(g), marked)
        block = f"{_header(n, g[0])}\n{body}\n</source>"
        cost = count(block) + 2
        if used + cost > budget_tokens:
            room = budget_tokens - used - count(_header(n, g[0])) - 8
            if room < 40:
                break
            while True:  # re-tokenising a cut text can shift a token or two: shrink until it fits
                body = _truncate(body, room)
                block = f"{_header(n, g[0])}\n{body}\n</source>"
                cost = count(block) + 2
                if used + cost <= budget_tokens or room < 40:
                    break
                room -= 8
            if used + cost > budget_tokens:
                break
        sources.append(Source(n, tuple(sorted(g, key=lambda h: h.start)), body, marked))
        blocks.append(block)
        used += cost
    return sources, "\n\n".join(blocks)


def build_sentences(hits: list[Hit], question: str, budget_tokens: int, max_sources: int,
                    keep: float = 0.0) -> tuple[list[Source], str]:
    """Numbered sources holding the sentences of the top ``max_sources`` passages that best match the question
    and their neighbours (chat.engine.evidence), all within ``budget_tokens``; a passage left no sentence is not
    shown."""
    groups = group(hits)[:max_sources]
    marks = [flagged(g) for g in groups]
    texts = [_clean(_merge_text(g), m) for g, m in zip(groups, marks, strict=True)]
    headers = sum(count(_header(i + 1, g[0])) + 12 for i, g in enumerate(groups))
    excerpts = evidence.select(question, texts, max(0, budget_tokens - headers), keep)
    sources: list[Source] = []
    blocks: list[str] = []
    for g, m, text in zip(groups, marks, excerpts, strict=True):
        if not text:
            continue
        n = len(sources) + 1
        sources.append(Source(n, tuple(sorted(g, key=lambda h: h.start)), text, m))
        blocks.append(f"{_header(n, g[0])}\n{text}\n</source>")
    return sources, "\n\n".join(blocks)


@dataclass(frozen=True)
class Context:
    sources: tuple[Source, ...]  # what the model is shown, numbered from 1
    system: str  # the fixed system prompt (a prefix the LLM server can reuse between requests)
    prompt: str  # the rendered answer prompt ("" when abstaining before generation)
    prompt_name: str
    prompt_version: str
    abstain_reason: str | None  # no_sources | below_similarity: no need to ask the model
    planted: injections.Found  # what the shown sources address to the assistant (withheld from the prompt)


def answer_prompt(cfg: AnswerSettings) -> str:
    """The answer prompt's name: the quoted form's when quotes behind claims are on (chat/engine/quotes.py)."""
    return "answer-quoted" if cfg.quotes else cfg.prompt


def _budget(question: str, sampling: Sampling, cfg: AnswerSettings, n_ctx: int) -> int:
    overhead = (count(prompts.load(cfg.system_prompt).template) + _ANSWER_MARGIN
                + count(prompts.load(answer_prompt(cfg)).render(sources="", question=question)))
    return max(0, min(cfg.context_tokens, n_ctx - overhead - sampling.max_tokens))


def build_context(found: Retrieved, sampling: Sampling, n_sources: int, cfg: AnswerSettings, n_ctx: int) -> Context:
    """The numbered sources and prompt for ``found``; abstain when nothing is similar enough to the question."""
    template = prompts.load(answer_prompt(cfg))
    system = prompts.load(cfg.system_prompt).template
    budget = _budget(found.query, sampling, cfg, n_ctx)
    if cfg.evidence == "sentences":
        sources, block = build_sentences(list(found.reranked), found.query, budget, n_sources, cfg.evidence_keep)
    else:
        sources, block = build(list(found.reranked), budget, n_sources)
    best = found.best_similarity
    reason = ("no_sources" if not sources else
              "below_similarity" if best is None or best < cfg.min_similarity else None)
    rendered = "" if reason else template.render(sources=block, question=found.query)
    planted = injections.find("\n".join(_merge_text(list(s.hits)) for s in sources))
    return Context(tuple(sources), system, rendered, template.name, template.version, reason, planted)
