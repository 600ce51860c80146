"""Stage: verify. The model's answer reaches the user a sentence at a time, each only after it passed the checks,
so no door ever shows text that is later withdrawn: what streams is exactly the final answer.

A sentence (or a paragraph, or a code block) is judged when the next one has begun, or when the stream ends:
- a "the sources do not contain …" sentence is dropped (a small model often answers and then adds one);
- markers naming no source are removed and counted;
- a sentence repeating the system prompt is dropped (``prompt_leak``), and so is one repeating what a source
  addresses to the assistant or the word it asks for (``instruction``), or holding a link the question did not
  ask for (``unasked_link``);
- a sentence long enough to judge (``min_terms`` content terms) must share ``min_support`` of its terms with one
  source (else ``unsupported``: the prompt's example, a planted instruction or the model's memory), and must not
  repeat more than ``max_ungrounded`` of the question's terms that no source holds (else ``ungrounded``: a small
  model fills such gaps with numbers from nearby text); a missing or wrong marker is then repaired by overlap;
- the answer's lead (its first claim, however short: the prompt asks for the short answer first) must also be
  anchored: the source sentence holding its new terms, with its neighbours, must hold ``min_anchor`` of the
  question's terms (else ``off_question``: a plausible span from a sentence about something else, what a small
  model gives when the sources lack the answer); a short lead must be supported like a long sentence;
- a shorter sentence after the lead is released when it cites a source, or joins the sentence after it; code
  blocks follow the answer they belong to.
When sentences were left out, the reply ends by saying so. When nothing passes, the answer is an abstention
with the reason of the last check that failed. The checks themselves, by name and in order, are in
chat/engine/checks.py; this module cuts the stream into units, runs them through the checks and releases what
passes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from chat.engine.checks import ABSTAIN_PHRASE, CHECKS, LEAD_FATAL, NAMES, Check, Ground, Piece, Verdict, said
from chat.engine.citations import MARKER, CheckedText, check, recite, repair
from chat.engine.context import Source
from chat.types import ABSTAIN_TEXT
from core.settings import VerifySettings
from retrieval import injections, keywords

__all__ = ["ABSTAIN_PHRASE", "NAMES", "SentenceStream", "Verified", "abstention", "units", "unlabel", "verify"]

# a sentence ends at . ! ? (closing quotes/brackets and trailing citation markers stay with it) before the next
# sentence starts; a blank line ends a paragraph
_BOUNDARY = re.compile(rf"(?P<end>[.!?][\"')\]]*(?:[ \t]*{MARKER.pattern})*)(?P<sep>\s+)(?=[^\s\[])"
                       r"|(?P<para>\n[ \t]*\n\s*)(?=\S)")
# a full stop that ends an initial or a common abbreviation ("John C. Messenger", "e.g.") ends no sentence, nor
# does one followed by a lower-case word or another full stop (a quoted ". . ."); the labelled set showed units
# cut there ("Tiddeman. [2][3]", ". .") that no source could support on their own
_NOT_AN_END = re.compile(r"(?:^|[\s(\"'])(?:[A-Z]|e\.g|i\.e|etc|vs?|cf|al|Dr|Mr|Mrs|Ms|St|Jr|Sr|Prof|No|approx)\.$")
# a label the model writes before a sentence ("ANSWER [1] …", "Answer: …", "Explanation: …"), copying the
# prompt's form: not part of the answer, so it is taken off and its marker moved to the sentence's end
_LABEL = re.compile(r"^(?P<lead>\s*)(?:\*\*)?(?:ANSWER|EXPLANATION|(?:Short )?[Aa]nswer(?=[ \t]*[:\[])|"
                    r"Explanation(?=[ \t]*:))(?:\*\*)?[ \t]*:?(?:\*\*)?[ \t]*"
                    rf"(?P<marker>{MARKER.pattern})?[ \t]*:?[ \t]*")


@dataclass(frozen=True)
class Verified:
    text: str  # the answer as shown (markers normalised and repaired); empty when abstaining
    cited: tuple[int, ...]  # source numbers, in order of first citation
    abstain_reason: str | None = None
    removed_markers: int = 0
    auto_cited: int = 0  # markers added or corrected by the overlap repair
    dropped: int = 0  # sentences left out because no source supports them (the reply says so)
    first_verified_ms: float | None = None  # from the start of the stream to the first released sentence
    model_cited: tuple[int, ...] = ()  # the sources the model's own markers named, before any repair

    @property
    def abstained(self) -> bool:
        return self.abstain_reason is not None


def _cut(buffer: str) -> tuple[str, str, str] | None:
    """The first complete unit of ``buffer``, the separator after it and the rest; None while it is unfinished."""
    for m in _BOUNDARY.finditer(buffer):
        if m.group("end") == "." and (_NOT_AN_END.search(buffer[:m.end("end")])
                                      or buffer[m.end():m.end() + 1] in ".abcdefghijklmnopqrstuvwxyz"):
            continue
        end = m.end("end") if m.group("end") else m.start("para")
        unit = buffer[:end]
        if unit.count("```") % 2 == 0:  # never inside a code block
            return unit, buffer[end:m.end()], buffer[m.end():]
    return None


def units(text: str) -> list[str]:
    """``text`` cut into the units the verifier judges one at a time (for labelled sets of them)."""
    out: list[str] = []
    while (cut := _cut(text)) is not None:
        unit, _, text = cut
        out.append(unit.strip())
    return [u for u in [*out, text.strip()] if u]


def unlabel(unit: str) -> str:
    """``unit`` without a leading label of the prompt's form; the label's marker goes to the sentence's end."""
    m = _LABEL.match(unit)
    rest = unit[m.end():] if m else ""
    if not m or not rest.strip():
        return unit
    marker = m.group("marker")
    if marker and not MARKER.search(rest) and not ABSTAIN_PHRASE.search(rest):
        body = rest.rstrip()
        tail = rest[len(body):]
        rest = (f"{body[:-1]} {marker}{body[-1]}" if body[-1] in ".!?" else f"{body} {marker}") + tail
    return m.group("lead") + rest


def abstention(reason: str, removed_markers: int = 0) -> Verified:
    return Verified("", (), reason, removed_markers)


class SentenceStream:
    """Feed it the model's tokens; it passes verified text to ``on_release`` and returns the verdict on close.

    ``off`` names checks (of ``checks.NAMES``) to skip, so a gate's effect can be measured with it switched off;
    with ``off_question`` off every sentence counts as anchored, as with ``min_anchor`` 0.
    """

    def __init__(self, sources: Sequence[Source], question: str, cfg: VerifySettings, system: str = "",
                 on_release: Callable[[str], None] | None = None, planted: injections.Found | None = None,
                 off: Collection[str] = frozenset(), meaning: object = None) -> None:
        if unknown := set(off) - set(NAMES):
            raise ValueError(f"no such check: {', '.join(sorted(unknown))} (the checks: {', '.join(NAMES)})")
        self.sources, self.cfg = list(sources), cfg
        self.by_number = {s.number: s.text for s in self.sources}
        self.question, self.system = question, system
        self.planted = planted or injections.find("\n".join(s.text for s in self.sources))
        self.ground = Ground.of(self.sources, question, cfg, system, self.planted, meaning)
        self.checks: tuple[Check, ...] = tuple(c for c in CHECKS if c.name not in off)
        self.on_release = on_release
        self.started = time.perf_counter()
        self.buffer = self.raw = ""
        self.before = ""  # the separator in front of the next unit
        self.held, self.held_before, self.held_after = "", "", ""  # a short piece waiting for the next sentence
        self.shown: list[str] = []
        self.said: set[str] = set()  # the shown sentences as ``checks.said`` gives them, to show a repeat once
        self.cited: list[int] = []
        self.removed = self.auto_cited = self.dropped = 0
        self.silenced: dict[str, int] = {}  # silent drops by the check's name: counted, never told
        self.last_reason: str | None = None
        self.failed_lead: str | None = None  # the check that stopped the answer's first claim: the answer abstains
        self.first_ms: float | None = None
        self.anchored = cfg.min_anchor <= 0 or "off_question" in off  # until the lead is anchored in the question

    def feed(self, piece: str) -> None:
        self.raw += piece
        self.buffer += piece
        while (cut := self._cut()) is not None:
            unit, sep, self.buffer = cut
            self._judge(unit, sep)

    def _cut(self) -> tuple[str, str, str] | None:
        return _cut(self.buffer)

    def _release(self, text: str, before: str) -> None:
        gap = "\n\n" if before.count("\n") > 1 else "\n" if "\n" in before else " "
        piece = (gap if self.shown else "") + text
        self.shown.append(piece)
        if self.first_ms is None:
            self.first_ms = (time.perf_counter() - self.started) * 1000
        if self.on_release:
            self.on_release(piece)

    def _judge(self, unit: str, after: str) -> None:
        before, self.before = self.before, after
        if self.failed_lead:
            return
        if self.held:  # a short piece joins the sentence after it
            unit, before = self.held + self.held_after + unit, self.held_before
            self.held = ""
        unit = unlabel(unit.replace(injections.WITHHELD, "").rstrip(" \t"))  # the prompt's marker, copied
        if unit.strip():
            checked = check(unit, len(self.sources))
            piece = Piece(unit, checked, set(keywords.terms(MARKER.sub(" ", checked.text))), self.said,
                          not self.anchored)
            self._apply(*self._verdict(piece), piece, before, after)

    def _verdict(self, piece: Piece, ground: Ground | None = None) -> tuple[Check | None, Verdict]:
        """The first check that does not pass the unit, judged against ``ground`` (the whole answer's unless
        given), with its verdict; None when every check passes it."""
        for c in self.checks:
            if (verdict := c.judge(ground or self.ground, piece)) is not Verdict.PASS:
                return c, verdict
        return None, Verdict.PASS

    def _apply(self, by: Check | None, verdict: Verdict, piece: Piece, before: str, after: str) -> None:
        if not (by and by.as_written):
            self.removed += piece.checked.removed
        if by and verdict is Verdict.DROP:
            self._drop(by)
            if by.name in LEAD_FATAL and piece.lead and self.ground.meaning is not None:
                self.failed_lead = by.name
        elif verdict is Verdict.VERBATIM and self.shown:
            self._release(piece.unit.strip("\n"), before)
        elif verdict is Verdict.HOLD:
            self.held, self.held_before, self.held_after = piece.unit, before, after
        elif verdict is Verdict.KEEP:
            self._accept(piece.checked.text, piece.checked.cited, before)
        elif verdict is Verdict.PASS:
            self._accept_repaired(piece.checked, before)

    def _accept_repaired(self, checked: CheckedText, before: str) -> None:
        """The first sentence past every check anchors the answer; its markers are mended by overlap."""
        self.anchored = True
        if self.ground.meaning is not None:
            self._accept_recited(checked, before)
            return
        mended = repair(checked.text, self.by_number, keywords.terms, self.cfg.repair_support)
        if mended.added + mended.corrected:
            self.auto_cited += mended.added + mended.corrected
            checked = check(mended.text, len(self.sources))
        self._accept(checked.text, checked.cited, before)

    def _accept_recited(self, checked: CheckedText, before: str) -> None:
        """With the meaning checks on, a sentence cites the source that states it: the model's own marker when
        that source does, else the source the check found most likely to."""
        probs = self.ground.stated(checked.text)
        if probs and max((probs.get(n, 0.0) for n in checked.cited), default=0.0) < self.cfg.min_stated:
            best = max(probs, key=lambda n: probs[n])
            self.auto_cited += 1
            checked = check(recite(checked.text, best), len(self.sources))
        self._accept(checked.text, checked.cited, before)

    def _accept(self, text: str, cited: tuple[int, ...], before: str) -> None:
        self.said.add(said(text))
        for n in cited:
            if n not in self.cited:
                self.cited.append(n)
        self._release(text, before)

    def _drop(self, by: Check) -> None:
        if by.told:
            self.dropped += 1
            self.last_reason = by.name
        else:
            self.silenced[by.name] = self.silenced.get(by.name, 0) + 1

    def close(self) -> Verified:
        rest, self.buffer = self.buffer, ""
        if rest.strip():
            self._judge(rest, "")
        self.held = ""  # a short closing remark that cites nothing ("Hope this helps.") is not shown
        text = "".join(self.shown).strip()
        model_cited = check(self.raw, len(self.sources)).cited
        if self.failed_lead and not text:
            if self.on_release:
                self.on_release(ABSTAIN_TEXT)
            return Verified("", (), self.failed_lead, self.removed, first_verified_ms=self.first_ms,
                            model_cited=model_cited)
        if not text:
            reason = self.last_reason or ("model_declined" if self.silenced.get("declined") else "too_short")
            if self.on_release:
                self.on_release(ABSTAIN_TEXT)
            return Verified("", (), reason, self.removed, first_verified_ms=self.first_ms, model_cited=model_cited)
        if self.dropped:
            note = (f"(citewise left out {self.dropped} sentence{'s' if self.dropped > 1 else ''} "
                    "that the sources do not support.)")
            self._release(note, "\n\n")
            text = "".join(self.shown).strip()
        return Verified(text, tuple(self.cited), None, self.removed, self.auto_cited, self.dropped, self.first_ms,
                        model_cited)


def verify(raw: str, sources: Sequence[Source], question: str, cfg: VerifySettings, system: str = "",
           off: Collection[str] = frozenset(), meaning: object = None) -> Verified:
    """The verdict on a whole answer (the same checks as streaming, fed at once)."""
    stream = SentenceStream(sources, question, cfg, system, off=off, meaning=meaning)
    stream.feed(raw)
    return stream.close()
