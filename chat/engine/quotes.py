"""Quotes behind claims: the answer carries, after each claim and its marker, the sentence of the cited source
that states it, copied between « and »; the claim is shown only when that sentence is in a source and states it.

Why: the word checks compare a claim with a whole passage, and a passage holds every entity of a wrong relation
("X founded Y" from a passage where Z founded Y and X is mentioned), so they pass it; and the model's marker may
name the wrong passage. A quote narrows both: the claim is judged against the one sentence it says it comes from
(and the lead's anchor against that sentence and its neighbours), and the source is the one that holds the quote.

With the managed llama.cpp server the reply is constrained by a grammar (:func:`grammar`): every quote is one of
the cited source's sentences, exactly, so a quote cannot be invented or misattributed, only badly chosen. Any
other endpoint gets the same prompt without the grammar, and a quote found in no source drops its claim
(``misquoted``); one found in another source moves the marker there.

A claim must restate its quote: ``min_quoted`` of its terms must be the quote's or the question's (else
``unsupported``), and then it passes the same checks as any sentence, against the quote alone.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from chat.engine import evidence
from chat.engine.checks import ABSTAIN_PHRASE, CHECKS, Check, Ground, Piece
from chat.engine.citations import MARKER, check, recite
from chat.engine.context import Source
from chat.engine.verify import SentenceStream, unlabel
from retrieval import injections, keywords

_QUOTE = re.compile(r"«(?P<quote>[^»]*)»")
# told drops of this stream's own: a claim with no quote, and a quote that no source holds
UNQUOTED = Check("unquoted", lambda g, p: None)  # type: ignore[arg-type,return-value]
MISQUOTED = Check("misquoted", lambda g, p: None)  # type: ignore[arg-type,return-value]
UNSUPPORTED = next(c for c in CHECKS if c.name == "unsupported")
_MAX_CLAIMS = 3


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def _literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{body.replace(chr(9), chr(92) + "t")}"'


def sentences(source: Source) -> list[str]:
    """The sentences of ``source`` a quote may be: those of the text the model was shown."""
    return [" ".join(s.split()) for s in evidence.split(source.text) if s.strip()]


def grammar(sources: Sequence[Source]) -> str:
    """A GBNF grammar for a quoted reply: the decline, or one to three lines of ``claim [n] «sentence of n»``."""
    # after a claim the model may decline the rest (it often does): the decline then ends the reply
    rules = [f'root ::= decline | claim{"".join(" more?" for _ in range(_MAX_CLAIMS - 1))}',
             'decline ::= "The sources do not contain the answer."',
             'more ::= claim | decline',
             'claim ::= text " " cite "\\n"',
             'text ::= [^\\n\\[«»] [^\\n\\[«»]*']
    cites = []
    for s in sources:
        options = [_literal(x.replace("»", '"').replace("«", '"')) for x in sentences(s)]
        if options:
            rules.append(f"q{s.number} ::= {' | '.join(options)}")
            cites.append(f'"[{s.number}] «" q{s.number} "»"')
    if not cites:  # nothing to quote: the decline is the only reply
        return 'root ::= "The sources do not contain the answer."\n'
    rules.append("cite ::= " + " | ".join(cites))
    return "\n".join(rules) + "\n"


def locate(quote: str, sources: Sequence[Source], cited: Sequence[int]) -> tuple[int, str] | None:
    """The source holding ``quote`` (a cited one first) and the quote's sentence with its neighbours, for the
    lead's anchor; None when no source holds it."""
    want = _norm(quote)
    if not want:
        return None
    ranked = sorted(sources, key=lambda s: (s.number not in cited, s.number))
    for s in ranked:
        parts = sentences(s)
        for i, sentence in enumerate(parts):
            if want in _norm(sentence) or (len(want) > 20 and _norm(sentence) in want
                                           and want in _norm(s.text)):
                return s.number, " ".join(parts[max(0, i - 1):i + 2])
        if want in _norm(s.text):
            return s.number, quote
    return None


class QuoteStream(SentenceStream):
    """:class:`SentenceStream` for quoted replies: a unit ends with its quote; its claim is judged against it."""

    def _cut(self) -> tuple[str, str, str] | None:
        end = self.buffer.find("»")
        if end < 0:
            return None
        rest = self.buffer[end + 1:]
        return self.buffer[:end + 1], "", rest

    def _judge(self, unit: str, after: str) -> None:
        found = _QUOTE.search(unit)
        if found is None:
            if ABSTAIN_PHRASE.search(unit) or not unit.strip():
                super()._judge(unit, after)
            elif not self.failed_lead:
                self._drop(UNQUOTED)
            return
        self.before = " " if self.shown else ""
        if self.failed_lead:
            return
        claim = unlabel((unit[:found.start()] + unit[found.end():]).replace(injections.WITHHELD, "").strip())
        checked = check(claim, len(self.sources))
        where = locate(found.group("quote"), self.sources, checked.cited)
        if where is None or not MARKER.sub("", claim).strip(" .,;:"):
            self._drop(MISQUOTED if where is None else UNQUOTED)
            return
        number, window = where
        if checked.cited and checked.cited != (number,):
            self.auto_cited += 1
        kept = self._restated(MARKER.sub(" ", claim), found.group("quote"))
        if not kept:  # no sentence of the claim restates its quote (each one dropped above)
            return
        checked = check(recite(kept, number), len(self.sources))
        narrowed = Ground.of([Source(number, (), found.group("quote"))], self.question, self.cfg, self.system,
                             self.planted, None)
        narrowed = dataclasses.replace(
            narrowed, sentence_terms=[[frozenset(keywords.terms(u)) for u in evidence.split(window)]])
        words = set(keywords.terms(MARKER.sub(" ", checked.text)))
        piece = Piece(checked.text, checked, words, self.said, not self.anchored)
        by, verdict = self._verdict(piece, narrowed)
        self._apply(by, verdict, piece, self.before, "")

    def _restated(self, claim: str, quote: str) -> str:
        """The sentences of ``claim`` that restate ``quote``: ``min_quoted`` of each one's terms are the quote's or
        the question's. The model often adds a sentence from elsewhere in the source to a claim; that sentence is
        left out (counted as unsupported), not the claim."""
        held = set(keywords.terms(quote)) | self.ground.question_terms
        kept = []
        for sentence in evidence.split(" ".join(claim.split())):
            words = set(keywords.terms(sentence))
            if words and len(words & held) / len(words) >= self.cfg.min_quoted:
                kept.append(sentence if sentence.rstrip()[-1:] in ".!?" else sentence.rstrip() + ".")
            elif words:
                self._drop(UNSUPPORTED)
        return " ".join(kept)

    def _accept_repaired(self, checked, before: str) -> None:  # type: ignore[override]
        """The quote chose the source: no repair by overlap."""
        self.anchored = True
        self._accept(checked.text, checked.cited, before)
