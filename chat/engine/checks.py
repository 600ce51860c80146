"""The verifier's checks, each a named object, judged in the order of ``CHECKS``.

A check looks at one unit of the answer (a sentence, a paragraph or a code block) against what the answer is
judged by (``Ground``), and says whether it passes on to the next check, is dropped, waits for the sentence
after it, or is shown as it is. Naming them lets a caller switch one off by name (the gate curves in
evals/gates.py do) and lets a dropped unit carry the name of the check that dropped it: a dropped unit the reply
tells about has that name as its abstain reason; a silent drop's name is only counted.

The order is behaviour: a unit is judged by the first check that does not pass it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from chat.engine import evidence
from chat.engine.citations import MARKER, CheckedText, anchoring, ungrounded_share
from chat.engine.context import Source
from core.settings import VerifySettings
from retrieval import injections, keywords

# the model saying it has no answer: about the sources, or in the first person ("I cannot find …"), never a
# cited sentence that merely contains the words ("if the parser cannot find a title, the file name is used [1]")
ABSTAIN_PHRASE = re.compile(r"\b(sources? (do|does) not (contain|mention|provide|include|say)|not (contained|"
                            r"mentioned|found) in the (provided )?sources|\b(i|we) (cannot|can'?t|could not|"
                            r"couldn'?t|am unable to|was unable to) (find|answer|tell)|\bno information (about|on)|"
                            r"\bi don'?t know)", re.I)
_LEAK_WORDS = 8  # this many consecutive words of the system prompt in a sentence is a leak
_ECHO_WORDS = 5  # this many consecutive words of a planted instruction in a sentence is obeying it
# words of a remark about the sources rather than a claim (stemmed as the keyword index stems them)
_META = frozenset(keywords.terms("source sources explanation information found stated states directly answer "
                                 "question provided first second third passage text cited citation"))
_LINK = re.compile(r"https?://|www\.|\]\(", re.I)
_ASKS_FOR_LINK = re.compile(r"\b(links?|urls?|https?|website|web ?page|address|download)\b", re.I)


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def said(text: str) -> str:
    """``text`` as compared for repeats: without markers, case or runs of space."""
    return " ".join(MARKER.sub(" ", text).lower().split())


class Verdict(enum.Enum):
    PASS = "pass"  # on to the next check; past the last one, the unit is repaired and shown
    DROP = "drop"  # left out, under the check's name
    HOLD = "hold"  # too short to judge alone: it joins the sentence after it
    KEEP = "keep"  # shown as checked, without the checks after this one or the repair
    VERBATIM = "verbatim"  # shown as written (a code block), once the answer has begun


@dataclass(frozen=True)
class Ground:
    """What every unit of one answer is judged against, worked out once per answer."""

    cfg: VerifySettings
    question: str
    texts: list[str]
    source_terms: list[set[str]]
    sentence_terms: list[list[frozenset[str]]]  # each source's sentences as term sets, for anchoring
    question_terms: set[str]
    leaks: set[tuple[str, ...]]  # the system prompt's word runs
    payloads: list[str]  # words a planted instruction asks for, unless the question asks for them too
    echoes: set[tuple[str, ...]]  # a planted instruction's word runs
    links_ok: bool  # the question asks for a link
    numbers: list[int] = field(default_factory=list)  # the sources' numbers, in the order of ``texts``
    meaning: Any = None  # a chat.engine.meaning.MeaningModel when the meaning checks are on
    _stated: dict[str, dict[int, float]] = field(default_factory=dict)

    def stated(self, text: str) -> dict[int, float]:
        """Per source number, the probability that the source states ``text`` (its markers left out); worked out
        once per sentence, since the check and the citation repair both ask."""
        claim = " ".join(MARKER.sub(" ", text).split())
        if claim not in self._stated:
            probs = self.meaning.support_each(claim, self.texts) if self.meaning is not None else []
            self._stated[claim] = dict(zip(self.numbers, probs, strict=False))
        return self._stated[claim]

    @classmethod
    def of(cls, sources: Sequence[Source], question: str, cfg: VerifySettings, system: str = "",
           planted: injections.Found | None = None, meaning: Any = None) -> Ground:
        texts = [s.text for s in sources]
        planted = planted or injections.find("\n".join(texts))
        asked = question.lower()
        return cls(cfg, question, texts, [set(keywords.terms(t)) for t in texts],
                   [[frozenset(keywords.terms(u)) for u in evidence.split(t)] for t in texts],
                   set(keywords.terms(question)), ngrams(system, _LEAK_WORDS) if system else set(),
                   [p for p in planted.payloads if not re.search(rf"\b{re.escape(p)}\b", asked)],
                   set().union(*(ngrams(s, _ECHO_WORDS) for s in planted.sentences)),
                   bool(_ASKS_FOR_LINK.search(question)), [s.number for s in sources],
                   meaning if cfg.meaning else None)


@dataclass(frozen=True)
class Piece:
    """One unit under judgement, with what the answer so far means for it."""

    unit: str  # as the model wrote it (its label taken off)
    checked: CheckedText  # its markers checked against the sources
    words: set[str]  # its content terms, markers left out
    shown: Set[str]  # the answer's shown sentences, as ``said`` gives them
    lead: bool  # the answer's lead is not anchored yet, so this unit may be it


@dataclass(frozen=True)
class Check:
    name: str
    judge: Callable[[Ground, Piece], Verdict]
    told: bool = True  # a drop is counted and the reply says so; False for a silent drop (nothing to tell)
    as_written: bool = False  # judges the unit before its markers count: a unit it stops has none removed


def _verdict(dropped: object) -> Verdict:
    return Verdict.DROP if dropped else Verdict.PASS


def _declined(g: Ground, p: Piece) -> Verdict:
    return _verdict(ABSTAIN_PHRASE.search(p.unit) and not p.checked.cited)


def _code_block(g: Ground, p: Piece) -> Verdict:
    return Verdict.VERBATIM if "```" in p.unit else Verdict.PASS


def _markers_alone(g: Ground, p: Piece) -> Verdict:
    """Markers left behind by a dropped sentence: nothing to show."""
    return _verdict(not MARKER.sub("", p.checked.text).strip(" \t\n.,;:"))


def _meta_remark(g: Ground, p: Piece) -> Verdict:
    """A remark about the sources ("This source is [3].", "Explanation [2]."): no claim to show."""
    return _verdict(p.words and p.words <= _META)


def _repeat(g: Ground, p: Piece) -> Verdict:
    return _verdict(said(p.checked.text) in p.shown)


def _prompt_leak(g: Ground, p: Piece) -> Verdict:
    return _verdict(g.leaks and ngrams(p.checked.text, _LEAK_WORDS) & g.leaks)


def _instruction(g: Ground, p: Piece) -> Verdict:
    """Repeating what a source addresses to the assistant, or the word it asks for."""
    low = p.checked.text.lower()
    return _verdict(any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", low) for w in g.payloads)
                    or (g.echoes and ngrams(p.checked.text, _ECHO_WORDS) & g.echoes))


def _unasked_link(g: Ground, p: Piece) -> Verdict:
    return _verdict(not g.links_ok and _LINK.search(p.checked.text))


def _short(g: Ground, p: Piece) -> Verdict:
    """Too few terms to judge: shown when it cites a source, else held for the next sentence; a cited lead is
    judged like a long sentence, since the answer's first claim may be a short one."""
    if len(p.words) >= g.cfg.min_terms or (p.checked.cited and p.words and p.lead):
        return Verdict.PASS
    return Verdict.KEEP if p.checked.cited else Verdict.HOLD


def _unsupported(g: Ground, p: Piece) -> Verdict:
    """No source holds ``min_support`` of its terms: the prompt's example, a planted instruction or memory."""
    best = max((len(p.words & st) / (len(p.words) or 1) for st in g.source_terms), default=0.0)
    return _verdict(best < g.cfg.min_support)


def _ungrounded(g: Ground, p: Piece) -> Verdict:
    """Repeats question terms no source holds: a small model fills such gaps with numbers from nearby text."""
    return _verdict(len(p.words) >= g.cfg.min_terms and ungrounded_share(
        g.question, p.checked.text, g.texts, keywords.terms) > g.cfg.max_ungrounded)


def _not_stated(g: Ground, p: Piece) -> Verdict:
    """No source states it, read for meaning: words of the passage recombined into another claim (a swapped
    name, number or subject, a lost negation) pass the overlap checks but not this one. The marker is mended to
    the source that states it when the model cited another (``SentenceStream._accept_repaired``)."""
    if g.meaning is None or not p.words:
        return Verdict.PASS
    return _verdict(max(g.stated(p.checked.text).values(), default=0.0) < g.cfg.min_stated)


def _off_question(g: Ground, p: Piece) -> Verdict:
    """The lead does not answer what was asked: a true sentence about a neighbouring fact, or the question said
    back, which is what a small model gives when the sources lack the answer. The lead's source sentence must
    hold the question's words (``min_anchor``), and with the meaning checks on, the lead read with the question
    must answer it (``min_answers``; 0 switches that part off)."""
    if not p.lead:
        return Verdict.PASS
    if anchoring(g.question_terms, p.words, g.sentence_terms) < g.cfg.min_anchor:
        return Verdict.DROP
    if g.meaning is not None and g.cfg.min_answers > 0:
        text = " ".join(MARKER.sub(" ", p.checked.text).split())
        return _verdict(g.meaning.answers(g.question, text) < g.cfg.min_answers)
    return Verdict.PASS


CHECKS: tuple[Check, ...] = (
    Check("declined", _declined, told=False, as_written=True),
    Check("code_block", _code_block, as_written=True),
    Check("markers_alone", _markers_alone, told=False),
    Check("meta_remark", _meta_remark, told=False),
    Check("repeat", _repeat, told=False),
    Check("prompt_leak", _prompt_leak),
    Check("instruction", _instruction),
    Check("unasked_link", _unasked_link),
    Check("short", _short),
    Check("unsupported", _unsupported),
    Check("ungrounded", _ungrounded),
    Check("not_stated", _not_stated),
    Check("off_question", _off_question),
)
# with the meaning checks on, a lead (the answer's first claim) failing one of these makes the whole answer an
# abstention: the rest of a reply whose first claim is unsupported or beside the question is not trusted either
LEAD_FATAL = frozenset({"not_stated", "off_question"})
NAMES = tuple(c.name for c in CHECKS)
