"""Token-aware chunking that prefers heading, then paragraph, then sentence boundaries.

Every chunk is an exact span of the document (``text[start:end]``) and carries its heading path, so a
citation can point at the passage and show where in the document it sits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.settings import ChunkSettings
from retrieval.tokens import count
from retrieval.types import Chunk, Document

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n")
_WORD = re.compile(r"\S+\s*")


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    paragraph_start: bool


def _sections(text: str) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, heading path) for each heading-delimited section."""
    sections: list[tuple[int, int, tuple[str, ...]]] = []
    path: list[tuple[int, str]] = []
    starts = [(m.start(), len(m.group(1)), m.group(2).strip()) for m in _HEADING.finditer(text)]
    prev, prev_path = 0, ()
    for pos, level, title in starts:
        if pos > prev:
            sections.append((prev, pos, prev_path))
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
        prev, prev_path = pos, tuple(t for _, t in path)
    sections.append((prev, len(text), prev_path))
    sections = [s for s in sections if text[s[0]:s[1]].strip()]
    merged: list[tuple[int, int, tuple[str, ...]]] = []
    for start, end, headings in sections:
        if merged and _HEADING.fullmatch(text[merged[-1][0]:merged[-1][1]].strip()):
            start = merged.pop()[0]  # a heading with no text of its own opens the next section
        merged.append((start, end, headings))
    return merged


def _split_long(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Split a span that exceeds the budget on word boundaries (a run-on sentence, a table row)."""
    pieces, cur_start, cur_tokens = [], start, 0
    for m in _WORD.finditer(text, start, end):
        t = count(m.group(0))
        if cur_tokens and cur_tokens + t > max_tokens:
            pieces.append((cur_start, m.start()))
            cur_start, cur_tokens = m.start(), 0
        if t > max_tokens:  # one "word" longer than a chunk (a base64 blob): cut by characters
            step = max(1, len(m.group(0)) * max_tokens // (t + 1))
            for s in range(m.start(), m.end(), step):
                pieces.append((s, min(s + step, m.end())))
            cur_start, cur_tokens = m.end(), 0
            continue
        cur_tokens += t
    if cur_start < end:
        pieces.append((cur_start, end))
    return [(s, e) for s, e in pieces if text[s:e].strip()]


def _units(text: str, start: int, end: int, max_tokens: int) -> list[_Unit]:
    units: list[_Unit] = []
    para_start = start
    bounds = [m for m in _PARAGRAPH.finditer(text, start, end)]
    spans = []
    for m in bounds:
        spans.append((para_start, m.start()))
        para_start = m.end()
    spans.append((para_start, end))
    for ps, pe in spans:
        if not text[ps:pe].strip():
            continue
        first = True
        sent_start = ps
        cuts = [m.end() for m in _SENTENCE_END.finditer(text, ps, pe)] + [pe]
        for cut in cuts:
            if cut <= sent_start or not text[sent_start:cut].strip():
                continue
            for s, e in _split_long(text, sent_start, cut, max_tokens):
                s += len(text[s:e]) - len(text[s:e].lstrip())
                e -= len(text[s:e]) - len(text[s:e].rstrip())
                units.append(_Unit(s, e, count(text[s:e]), first))
                first = False
            sent_start = cut
    return units


def _pack(text: str, units: list[_Unit], cfg: ChunkSettings) -> list[tuple[int, int]]:
    """Greedy packing: close a chunk at a paragraph start when it is at least half full, else when full."""
    chunks: list[tuple[int, int]] = []
    cur: list[_Unit] = []

    def size(us: list[_Unit]) -> int:
        return count(text[us[0].start:us[-1].end]) if us else 0

    def close() -> list[_Unit]:
        chunks.append((cur[0].start, cur[-1].end))
        carry: list[_Unit] = []
        for u in reversed(cur):
            if sum(c.tokens for c in carry) + u.tokens > cfg.overlap_tokens:
                break
            carry.insert(0, u)
        return carry if len(carry) < len(cur) else []

    for i, unit in enumerate(units):
        if cur and unit.paragraph_start:
            para_end = next((j for j in range(i + 1, len(units)) if units[j].paragraph_start), len(units))
            para_tokens = sum(u.tokens for u in units[i:para_end])
            used = sum(u.tokens for u in cur)
            if used + para_tokens > cfg.max_tokens and used >= cfg.max_tokens // 2:
                cur = close()
        if cur and size([*cur, unit]) > cfg.max_tokens:
            cur = close()
            while cur and size([*cur, unit]) > cfg.max_tokens:
                cur.pop(0)
        cur.append(unit)
    if cur:
        chunks.append((cur[0].start, cur[-1].end))
    return chunks


def split(document: Document, cfg: ChunkSettings) -> list[Chunk]:
    """Chunks of ``document`` of at most ``cfg.max_tokens`` tokens, overlapping by up to ``cfg.overlap_tokens``."""
    text = document.text
    out: list[Chunk] = []
    for start, end, headings in _sections(text):
        for s, e in _pack(text, _units(text, start, end, cfg.max_tokens), cfg):
            body = text[s:e]
            out.append(Chunk(document.id, len(out), body, count(body), s, e, headings))
    return out
