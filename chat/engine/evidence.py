"""Evidence at sentence level: from each re-ranked passage, the sentences that match the question and their
neighbours, instead of whole chunks.

Why: a 1.5B model shown five whole chunks mostly replied that the sources do not contain the answer, even when
source [1] held it; and llama.cpp on two cores reads a prompt at ~75 tokens/s, so every source token is time to
the first word. The best-matching sentence of each of the top passages, grown by its neighbours while the token
budget lasts, keeps the answer and drops most of the rest.

A sentence's match is the IDF-weighted share of the question's content terms it holds (stemmed as the keyword
index stems them; IDF over the candidate sentences, so terms every passage shares weigh little). Markdown tables
and list runs stay whole units up to a size, so a row never loses its header.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from retrieval import keywords
from retrieval.tokens import count

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_TABLE_LINE = re.compile(r"^\s*\|")
_GAP = "…"
_MAX_BLOCK_TOKENS = 160  # a table or code block longer than this is cut into its lines


@dataclass(frozen=True)
class Unit:
    text: str
    terms: frozenset[str]
    tokens: int


def split(text: str) -> list[str]:
    """Sentences of ``text``; a Markdown table or fenced code block is one unit while it is small."""
    out: list[str] = []
    block: list[str] = []
    fence = False

    def flush() -> None:
        if block:
            joined = "\n".join(block)
            out.extend([joined] if count(joined) <= _MAX_BLOCK_TOKENS else block)
            block.clear()

    for line in text.splitlines():
        if line.strip().startswith("```"):
            block.append(line)
            fence = not fence
            if not fence:
                flush()
            continue
        if fence or _TABLE_LINE.match(line):
            block.append(line)
            continue
        flush()
        out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    flush()
    return out


def _idf(units: list[list[Unit]]) -> dict[str, float]:
    df: Counter[str] = Counter()
    n = 0
    for group in units:
        for u in group:
            df.update(u.terms)
            n += 1
    return {t: math.log(1 + n / (1 + c)) for t, c in df.items()}


def match(question_terms: set[str], unit_terms: frozenset[str], idf: dict[str, float]) -> float:
    """The IDF-weighted share of the question's terms that ``unit_terms`` holds (0..1)."""
    total = sum(idf.get(t, 1.0) for t in question_terms)
    return sum(idf.get(t, 1.0) for t in question_terms & unit_terms) / total if total else 0.0


def select(question: str, texts: list[str], budget_tokens: int, keep: float = 0.0) -> list[str]:
    """For each passage of ``texts`` (best first), the excerpt shown to the model; "" for a passage that gets none.

    Every passage first gets its best-matching unit (in rank order while the budget lasts); then units are added
    one at a time by value (the match, plus a bonus next to a chosen unit, less a little per rank) until the budget
    is spent. An excerpt keeps document order and marks gaps with an ellipsis. A passage whose best unit matches
    the question less than ``keep`` times as well as the best passage's gets none: a distractor the small model
    would otherwise cite or answer from.
    """
    units = [[Unit(s, frozenset(keywords.terms(s)), count(s) + 1) for s in split(t)] for t in texts]
    idf = _idf(units)
    q = set(keywords.terms(question))
    scores = [[match(q, u.terms, idf) for u in group] for group in units]
    chosen: list[set[int]] = [set() for _ in units]
    used = 0
    top = max((max(sc, default=0.0) for sc in scores), default=0.0)
    for g, group in enumerate(units):
        if not group or (g and max(scores[g]) < keep * top):
            continue
        best = max(range(len(group)), key=lambda i: (scores[g][i], -i))
        if used + group[best].tokens <= budget_tokens:
            chosen[g].add(best)
            used += group[best].tokens
    while True:
        pick, value = None, -1.0
        for g, group in enumerate(units):
            if not chosen[g]:
                continue
            for i, u in enumerate(group):
                if i in chosen[g] or used + u.tokens > budget_tokens:
                    continue
                near = (i - 1 in chosen[g]) or (i + 1 in chosen[g])
                v = scores[g][i] + (0.5 if near else 0.0) - 0.1 * g
                if v > value:
                    pick, value = (g, i), v
        if pick is None or value <= 0.0:
            break
        chosen[pick[0]].add(pick[1])
        used += units[pick[0]][pick[1]].tokens
    out = []
    for g, group in enumerate(units):
        text, last = "", None
        for i in sorted(chosen[g]):
            piece = group[i].text
            if last is not None:
                block = "\n" in piece or "\n" in group[last].text or piece.startswith("|")
                text += ("\n" if block else " ") + ("" if i == last + 1 else _GAP.strip() + ("\n" if block else " "))
            text += piece
            last = i
        out.append(text)
    return out
