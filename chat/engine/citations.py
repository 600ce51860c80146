"""Citation markers: find ``[n]`` (also ``[1][2]``, ``[1, 2]``, ``[1-3]``), drop those with no such source.

``MARKER`` and ``numbers`` are the one grammar of a marker: the verifier, the web UI and the evals read markers
through them, so a form the model writes (a range, a list) counts the same everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = re.compile(r"\[(\s*\d+\s*(?:[,\-–]\s*\d+\s*)*)\]")


@dataclass(frozen=True)
class CheckedText:
    text: str
    cited: tuple[int, ...]  # valid source numbers, in order of first citation
    removed: int  # markers (or numbers inside one) that named no source


def numbers(marker: str) -> tuple[int, ...]:
    """The source numbers one marker names, ranges expanded (``[1-3]`` is 1, 2, 3; ``[1, 2]`` is 1, 2); a range
    of 20 or more, or a reversed one, is read as its two ends, not as a list the model never meant."""
    inner = marker[1:-1] if marker.startswith("[") and marker.endswith("]") else marker
    out: list[int] = []
    for part in re.split(r"\s*,\s*", inner.strip()):
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            lo, hi = int(bounds[0]), int(bounds[1])
            out.extend(range(lo, hi + 1) if 0 < hi - lo < 20 else [lo, hi])
        elif part.isdigit():
            out.append(int(part))
    return tuple(out)


def cited_numbers(text: str) -> tuple[int, ...]:
    """Every source number the markers in ``text`` name, in order of first mention."""
    return tuple(dict.fromkeys(n for m in MARKER.finditer(text) for n in numbers(m.group())))


def check(text: str, n_sources: int) -> CheckedText:
    """Keep markers that name sources 1..n_sources, normalised to ``[a][b]``; remove and count the rest."""
    cited: list[int] = []
    removed = 0

    def replace(m: re.Match[str]) -> str:
        nonlocal removed
        named = numbers(m.group(1))
        valid = [n for n in named if 1 <= n <= n_sources]
        removed += len(named) - len(valid)
        for n in valid:
            if n not in cited:
                cited.append(n)
        return "".join(f"[{n}]" for n in dict.fromkeys(valid))

    cleaned = MARKER.sub(replace, text)
    # "finished. [3]" -> "finished [3]." so a marker always sits inside the sentence it supports
    cleaned = re.sub(r"(?<=[\w\])%])([.!?])[ \t]*((?:\[\d+\])+)(?=\s|$)", r" \2\1", cleaned)
    cleaned = re.sub(r"(\[\d+\]) (?=\[\d+\])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return CheckedText(cleaned, tuple(cited), removed)


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])(\s+)")


@dataclass(frozen=True)
class Repaired:
    text: str
    added: int  # markers added to sentences the model left uncited
    corrected: int  # markers moved to the source that actually states the sentence


def repair(text: str, sources: dict[int, str], terms_of, support: float = 0.5) -> Repaired:
    """Check each sentence's markers against the sources by content-word overlap, and mend what is off.

    A small model often answers from the right passage yet forgets the marker or writes a wrong number. A
    sentence is *supported* by a source holding at least ``support`` of its content terms. An uncited sentence
    gets the best supporting source; a cited sentence none of whose sources supports it, while another source
    does, has its markers replaced. Sentences no source supports keep their markers (or stay uncited): overlap
    cannot judge paraphrase, and inventing support would be worse. Layout (newlines, code) is kept.
    """
    source_terms = {n: set(terms_of(t)) for n, t in sources.items()}
    parts = _SENTENCE_SPLIT.split(text)
    added = corrected = 0
    for i in range(0, len(parts), 2):
        sentence = parts[i]
        words = set(terms_of(MARKER.sub("", sentence)))
        if len(words) < 3 or "```" in sentence:
            continue
        overlap = {n: len(words & st) / len(words) for n, st in source_terms.items()}
        best = max(overlap, key=lambda n: overlap[n], default=None)
        if best is None or overlap[best] < support:
            continue
        cited = [n for m in MARKER.finditer(sentence) for n in numbers(m.group(1))]
        if cited and any(overlap.get(n, 0.0) >= support for n in cited):
            continue
        parts[i] = recite(sentence, best)
        if cited:
            corrected += 1
        else:
            added += 1
    return Repaired("".join(parts), added, corrected)


def recite(sentence: str, number: int) -> str:
    """``sentence`` with its markers replaced by one naming source ``number``, before its closing punctuation."""
    bare = re.sub(r"\s+([.!?])", r"\1", MARKER.sub("", sentence)).rstrip()
    end = len(bare) - (1 if bare[-1:] in ".!?" else 0)
    return f"{bare[:end]} [{number}]{bare[end:]}{sentence[len(sentence.rstrip()):]}"


def ungrounded_share(question: str, answer: str, sources: list[str], terms_of) -> float:
    """Share of the question's terms that the answer repeats but no source contains.

    An answer that restates the question's concepts (say "water tank capacity") which appear in no source has not
    found them there: a small model fills such gaps with numbers from nearby text. Near 0 for grounded answers.
    """
    asked = set(terms_of(question)) & set(terms_of(MARKER.sub("", answer)))
    if not asked:
        return 0.0
    known = set().union(*(set(terms_of(s)) for s in sources)) if sources else set()
    return len(asked - known) / len(asked)


def best_support(answer: str, sources: list[str], terms_of) -> float:
    """The best share of an answer sentence's content terms found in any one source (1 when no sentence is long
    enough to judge).

    When even the best-supported sentence shares under half of its terms with every source, the answer came
    from elsewhere: the prompt's own example, a planted instruction, or the model's memory.
    """
    source_terms = [set(terms_of(s)) for s in sources]
    best, judged = 0.0, False
    for sentence in _SENTENCE_SPLIT.split(answer)[::2]:
        words = set(terms_of(MARKER.sub("", sentence)))
        if len(words) < 3:
            continue
        judged = True
        best = max(best, max((len(words & st) / len(words) for st in source_terms), default=0.0))
    return best if judged else 1.0  # too short to judge: other checks decide


# stemmed words that name the kind of answer asked for ("how many", "what year", "called") or carry little
# ("get", "make"): an answer's sentence rarely repeats them, so they do not count toward its anchoring
QUESTION_WORDS = frozenset({"mani", "much", "year", "call", "name", "kind", "type", "get", "one", "use", "known",
                            "also", "happen", "mean", "refer", "consid", "way", "term", "exampl", "describ", "give",
                            "make", "take"})


def anchoring(question_terms: set[str], claim_terms: set[str], sources: list[list[frozenset[str]]]) -> float:
    """How well the question is anchored where the claim's answer sits: the share of the question's terms found
    in the source sentence that holds the claim's new terms (those the question lacks), and its neighbours.

    A small model told to answer first will, when the sources lack the answer, pick a plausible span from a
    sentence about something else; that sentence rarely shares the question's terms, where the sentence holding
    a real answer usually does. ``sources`` holds each source's sentences as term sets.
    """
    question_terms = question_terms - QUESTION_WORDS or question_terms
    if not question_terms:
        return 1.0
    new = claim_terms - question_terms or claim_terms
    best: tuple[int, float] = (0, 0.0)
    for units in sources:
        for i, u in enumerate(units):
            hits = len(new & u)
            if hits:
                window = u.union(*units[max(0, i - 1):i], *units[i + 1:i + 2])
                best = max(best, (hits, len(question_terms & window) / len(question_terms)))
    return best[1]
