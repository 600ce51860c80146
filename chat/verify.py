"""Stage: verify. Check the model's answer against the sources it was shown before anyone sees it as final.

In order: stray "the sources do not contain" sentences are dropped (a small model often answers and then adds
one); markers naming no source are removed; the answer abstains when it is too short to be one, repeats the
question's terms that no source holds (``ungrounded``), or has no sentence a source backs (``unsupported``: the
prompt's example, a planted instruction or the model's memory); otherwise missing or wrong markers are repaired
by content-term overlap. Every abstention carries its reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from chat.citations import best_support, check, repair, ungrounded_share
from chat.context import Source
from core.settings import VerifySettings
from retrieval import keywords

ABSTAIN_PHRASE = re.compile(r"(sources? (do|does) not (contain|mention|provide|include|say)|not (contained|"
                            r"mentioned|found) in the sources|cannot (find|answer)|no information (about|on)|"
                            r"i don'?t know)", re.I)
_PIECES = re.compile(r"((?<=[.!?])\s+|\n\s*\n)")  # sentences/paragraphs at even indexes, separators between


@dataclass(frozen=True)
class Verified:
    text: str  # the answer as shown (markers normalised and repaired); empty when abstaining
    cited: tuple[int, ...]  # source numbers, in order of first citation
    abstain_reason: str | None = None
    removed_markers: int = 0
    auto_cited: int = 0  # markers added or corrected by the overlap repair

    @property
    def abstained(self) -> bool:
        return self.abstain_reason is not None


def abstention(reason: str, removed_markers: int = 0) -> Verified:
    return Verified("", (), reason, removed_markers)


def verify(raw: str, sources: Sequence[Source], question: str, cfg: VerifySettings) -> Verified:
    pieces = _PIECES.split(raw)
    body = "".join(p for i, p in enumerate(pieces) if i % 2 or not ABSTAIN_PHRASE.search(p)).strip()
    checked = check(body, len(sources))
    texts = [s.text for s in sources]
    if len(keywords.terms(body)) < cfg.min_terms:
        return abstention("model_declined" if ABSTAIN_PHRASE.search(raw) else "too_short", checked.removed)
    if ungrounded_share(question, body, texts, keywords.terms) > cfg.max_ungrounded:
        return abstention("ungrounded", checked.removed)
    if best_support(body, texts, keywords.terms) < cfg.min_support:
        return abstention("unsupported", checked.removed)
    mended = repair(checked.text, {s.number: s.text for s in sources}, keywords.terms, cfg.repair_support)
    auto_cited = mended.added + mended.corrected
    if auto_cited:
        checked = check(mended.text, len(sources))
    return Verified(checked.text, checked.cited, None, checked.removed, auto_cited)
