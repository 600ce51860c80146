"""The verifier judged against people, not against itself.

The chain decides by word overlap whether a sentence is supported by a source (chat/verify.py); scoring it with the
same overlap would hold by construction. So answer sentences from real runs are labelled by reading: each
sentence the model wrote, with the passages its own markers cite, marked ``supported`` (every claim in it is
stated or directly entailed by a cited passage), ``unsupported`` (some claim is not), or ``not_a_claim`` (an
abstention, a greeting). How they were labelled is in ``evals/data/README.md``.

The verifier's claim about a sentence is what the user would be shown: the sentence released, citing at least one
of the passages the model cited. Against the labels that gives its precision (shown sentences that are supported),
recall (supported sentences it shows) and the share of unsupported ones it keeps from the user.

    citewise eval support [--labels evals/data/support_labels.jsonl] [--json]
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chat.engine.citations import cited_numbers
from chat.engine.context import Source
from chat.engine.meaning import for_settings
from chat.engine.verify import SentenceStream, units
from chat.types import ABSTAIN_TEXT, Answer
from core.settings import VerifySettings
from evals import squad

LABELS = Path(__file__).resolve().parent / "data" / "support_labels.jsonl"
THRESHOLDS = Path(__file__).with_name("thresholds.toml")  # its [support] section
KINDS = ("supported", "unsupported", "not_a_claim")


def model_sentences(raw: str | None, numbers: set[int]) -> list[dict[str, Any]]:
    """The model's reply cut into the units the verifier judges, each with the sources its markers name and no
    label yet: what a reader labels."""
    return [{"text": u, "cited": sorted(set(cited_numbers(u)) & numbers), "label": None} for u in units(raw or "")]


def export(qa: squad.QA, answer: Answer, kind: str) -> dict[str, Any]:
    """One answer as material to label and to re-verify offline (evals/gates.py): the question, every source
    shown to the model, the model's raw reply and its own sentences (before verification) with the source numbers
    their markers name; no sentences when the chain abstained before asking the model."""
    sentences = model_sentences(answer.model_output, {c.number for c in answer.sources})
    return {"qa": qa.id, "kind": kind, "question": qa.question, "gold": list(qa.answers),
            "gold_paragraph": qa.paragraph_id,
            "sources": [{"number": c.number, "uri": c.uri, "text": c.text} for c in answer.sources],
            "sentences": sentences, "raw": answer.model_output, "shown": answer.text,
            "abstain_reason": answer.abstain_reason, "best_similarity": answer.best_similarity,
            "latency": answer.latency}


def load(path: Path = LABELS) -> list[dict[str, Any]]:
    """The labelled answers; a record or label that is malformed is an error naming its line."""
    records = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            numbers = {s["number"] for s in rec["sources"]}
            for s in rec["sentences"]:
                if s["label"] not in KINDS:
                    raise ValueError(f"label {s['label']!r} is not one of {', '.join(KINDS)}")
                if not set(s["cited"]) <= numbers:
                    raise ValueError(f"cites {s['cited']} but the answer had sources {sorted(numbers)}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{i}: {exc}") from exc
        records.append(rec)
    return records


@dataclass(frozen=True)
class SupportResult:
    answers: int
    labelled: int  # claims judged: supported + unsupported, with at least one cited passage
    supported: int
    unsupported: int
    uncited: int  # claims with no marker of the model's: the verifier's repair picks their source; not scored here
    true_positive: int  # supported and shown citing its passage
    false_positive: int  # unsupported and shown
    false_negative: int  # supported and withheld
    true_negative: int  # unsupported and withheld
    precision: float | None  # of the shown sentences, the share that is supported
    recall: float | None  # of the supported sentences, the share shown
    unsupported_withheld: float | None  # of the unsupported sentences, the share kept from the user
    model_supported: float | None  # the model's own cited sentences that are supported (before any check)
    by_reason: dict[str, dict[str, int]]  # why supported sentences were withheld, and unsupported ones caught

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def judge(record: dict[str, Any], sentence: dict[str, Any], cfg: VerifySettings,
          off: Collection[str] = frozenset()) -> tuple[bool, str | None]:
    """Would the user be shown ``sentence`` citing one of its own passages? And, if not, the verifier's reason.

    The sentence is judged where it stood in its answer: the sentences before it are streamed through the verifier
    first, as they were live, so a check that depends on position (the lead must be anchored in the question) is
    applied as the user met it."""
    sources = [Source(s["number"], (), s["text"]) for s in record["sources"]]
    position = next(i for i, s in enumerate(record["sentences"]) if s is sentence)
    before = " ".join(s["text"] for s in record["sentences"][:position])
    released: list[str] = []
    stream = SentenceStream(sources, record["question"], cfg, "", released.append, off=off,
                          meaning=for_settings(cfg))
    stream.feed(f"{before} " if before else "")
    dropped, reason = stream.dropped, stream.last_reason
    stream.feed(sentence["text"])
    start = len(released)
    stream.close()
    mine = [p for p in released[start:] if p.strip() != ABSTAIN_TEXT and not p.strip().startswith("(citewise left")]
    if not mine:
        return False, stream.last_reason if stream.dropped > dropped or stream.last_reason != reason else "withheld"
    cited = {n for p in mine for n in cited_numbers(p)}
    if not cited & set(sentence["cited"]):
        return False, "recited_elsewhere"  # shown, but the repair moved its marker to another passage
    return True, None


def score(records: Iterable[dict[str, Any]], cfg: VerifySettings | None = None,
          off: Collection[str] = frozenset()) -> SupportResult:
    cfg = cfg or VerifySettings()
    records = list(records)
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "uncited": 0}
    reasons: dict[str, dict[str, int]] = {"why supported kept out": {}, "why unsupported kept out": {}}
    for rec in records:
        for s in rec["sentences"]:
            if s["label"] == "not_a_claim":
                continue
            if not s["cited"]:
                counts["uncited"] += 1
                continue
            shown, reason = judge(rec, s, cfg, off)
            good = s["label"] == "supported"
            counts[{(True, True): "tp", (False, True): "fp", (True, False): "fn", (False, False): "tn"}[
                (good, shown)]] += 1
            if not shown:
                bucket = reasons["why supported kept out" if good else "why unsupported kept out"]
                bucket[reason or "?"] = bucket.get(reason or "?", 0) + 1
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    return SupportResult(
        answers=len(records), labelled=tp + fp + fn + tn, supported=tp + fn, unsupported=fp + tn,
        uncited=counts["uncited"], true_positive=tp, false_positive=fp, false_negative=fn, true_negative=tn,
        precision=_ratio(tp, tp + fp), recall=_ratio(tp, tp + fn), unsupported_withheld=_ratio(tn, tn + fp),
        model_supported=_ratio(tp + fn, tp + fp + fn + tn), by_reason=reasons)
