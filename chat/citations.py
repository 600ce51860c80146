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
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return CheckedText(cleaned, tuple(cited), removed)
