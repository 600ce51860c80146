"""Citation markers: find ``[n]`` (also ``[1][2]``, ``[1, 2]``, ``[1-3]``), drop those with no such source."""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARKER = re.compile(r"\[(\s*\d+\s*(?:(?:,|-|–)\s*\d+\s*)*)\]")


@dataclass(frozen=True)
class CheckedText:
    text: str
    cited: tuple[int, ...]  # valid source numbers, in order of first citation
    removed: int  # markers (or numbers inside one) that named no source


def _numbers(inner: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*,\s*", inner.strip()):
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            lo, hi = int(bounds[0]), int(bounds[1])
            out.extend(range(lo, hi + 1) if 0 < hi - lo < 20 else [lo, hi])
        elif part.isdigit():
            out.append(int(part))
    return out


def check(text: str, n_sources: int) -> CheckedText:
    """Keep markers that name sources 1..n_sources, normalised to ``[a][b]``; remove and count the rest."""
    cited: list[int] = []
    removed = 0

    def replace(m: re.Match[str]) -> str:
        nonlocal removed
        numbers = _numbers(m.group(1))
        valid = [n for n in numbers if 1 <= n <= n_sources]
        removed += len(numbers) - len(valid)
        for n in valid:
            if n not in cited:
                cited.append(n)
        return "".join(f"[{n}]" for n in dict.fromkeys(valid))

    cleaned = _MARKER.sub(replace, text)
    # "finished. [3]" -> "finished [3]." so a marker always sits inside the sentence it supports
    cleaned = re.sub(r"(?<=\w)([.!?])[ \t]*((?:\[\d+\])+)(?=\s|$)", r" \2\1", cleaned)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return CheckedText(cleaned, tuple(cited), removed)


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])(\s+)")


def attribute(text: str, sources: dict[int, str], terms_of, min_overlap: float = 0.5) -> tuple[str, int]:
    """Add ``[n]`` to sentences that cite nothing, when one source holds most of their content words.

    Small models often answer correctly from a source yet forget the marker; the marker is added only when at
    least ``min_overlap`` of the sentence's content terms occur in that source. Returns the text and how many
    markers were added. Separators (newlines, code fences) are kept as they were.
    """
    source_terms = {n: set(terms_of(t)) for n, t in sources.items()}
    parts = _SENTENCE_SPLIT.split(text)
    added = 0
    for i in range(0, len(parts), 2):
        sentence = parts[i]
        words = set(terms_of(sentence))
        if _MARKER.search(sentence) or len(words) < 3 or "```" in sentence:
            continue
        best, score = max(((n, len(words & st) / len(words)) for n, st in source_terms.items()),
                          key=lambda p: p[1], default=(None, 0.0))
        if best is not None and score >= min_overlap:
            end = len(sentence) - (1 if sentence[-1:] in ".!?" else 0)
            parts[i] = f"{sentence[:end]} [{best}]{sentence[end:]}"
            added += 1
    return "".join(parts), added
