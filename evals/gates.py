"""Each answer gate's precision/recall curve, from one eval run, without asking the model again.

    citewise eval answers --half tune ... --sentences replies.jsonl     # the model's raw replies and their sources
    python -m evals.gates replies.jsonl [--json]

A reply is re-verified offline (chat.engine.verify on the raw text and the sources the model saw) at each operating
point of a gate, so a curve costs seconds rather than an hour of generation. A gate's job is to stop wrong
replies: a reply to a question whose sources lack the answer (article filtered out, or gold paragraph withheld),
or an answerable one that does not contain a gold answer. Its precision is the share of the replies it stops that
were wrong; its recall the share of wrong replies it stops. What the user feels is shown beside: false abstention
and gold contained on answerable questions, abstention on each kind of unanswerable one. Operating points are
chosen on the tune half; the README reports the other.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chat.engine.citations import cited_numbers
from chat.engine.context import Source
from chat.engine.meaning import for_settings
from chat.engine.verify import verify
from core.settings import VerifySettings
from evals.answers import contains


@dataclass(frozen=True)
class Point:
    gate: str
    value: float
    false_abstention: float
    gold_contained: float
    hard_abstention: float | None
    article_abstention: float | None
    precision: float | None  # of the replies this gate stopped, the share that were wrong
    recall: float | None  # of the wrong replies that reached this gate, the share it stopped


@dataclass(frozen=True)
class Setting:
    """One operating point: the verifier's settings, the similarity floor and the checks switched off by name."""

    cfg: VerifySettings
    min_similarity: float
    off: Collection[str] = field(default_factory=frozenset)


ANCHOR_OFF = frozenset({"off_question"})  # the anchor gate, switched off by its check's name


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reply(rec: dict[str, Any], at: Setting) -> str | None:
    """What the user would be shown at this operating point; None for an abstention."""
    sim = rec.get("best_similarity")
    if rec.get("raw") is None or sim is None or sim < at.min_similarity:
        return None
    sources = [Source(s["number"], (), s["text"]) for s in rec["sources"]]
    verdict = verify(rec["raw"], sources, rec["question"], at.cfg, off=at.off, meaning=for_settings(at.cfg))
    return None if verdict.abstained else verdict.text


def wrong(rec: dict[str, Any], shown: str | None) -> bool:
    return shown is not None and (rec["kind"] != "answerable" or not contains(shown, tuple(rec["gold"])))


def model_citation_precision(records: list[dict[str, Any]]) -> float | None:
    """The model's own markers on answerable questions: the share naming the gold paragraph (no gate moves it)."""
    shares = []
    for rec in records:
        if rec["kind"] != "answerable" or not rec.get("raw"):
            continue
        uri = {s["number"]: s["uri"] for s in rec["sources"]}
        named = set(cited_numbers(rec["raw"])) & uri.keys()
        if named:
            shares.append(sum(uri[n] == rec["gold_paragraph"] for n in named) / len(named))
    return round(sum(shares) / len(shares), 4) if shares else None


def point(records: list[dict[str, Any]], gate: str, value: float, at: Setting, base: Setting) -> Point:
    """Figures at one operating point; the gate's precision/recall against the point with the gate off."""
    kinds = {"answerable": [0, 0, 0], "paragraph": [0, 0], "article": [0, 0]}
    stopped = stopped_wrong = wrong_before = 0
    for rec in records:
        shown = reply(rec, at)
        before = reply(rec, base)
        k = kinds[rec["kind"]]
        k[0] += 1
        k[1] += shown is None
        if rec["kind"] == "answerable" and shown is not None:
            k[2] += contains(shown, tuple(rec["gold"]))
        if before is not None:
            wrong_before += wrong(rec, before)
            if shown is None:
                stopped += 1
                stopped_wrong += wrong(rec, before)
    a, p, r = kinds["answerable"], kinds["paragraph"], kinds["article"]
    return Point(gate, value, _ratio(a[1], a[0]) or 0.0, _ratio(a[2], a[0]) or 0.0, _ratio(p[1], p[0]),
                 _ratio(r[1], r[0]), _ratio(stopped_wrong, stopped), _ratio(stopped_wrong, wrong_before))


def curves(records: list[dict[str, Any]], cfg: VerifySettings, min_similarity: float) -> list[Point]:
    """The anchor gate swept with the similarity gate off, and the similarity gate swept with the anchor gate
    off: each curve shows what one gate adds on its own."""
    base = Setting(cfg, -1.0, ANCHOR_OFF)
    out = [point(records, "min_anchor", a / 20, Setting(replace(cfg, min_anchor=a / 20), -1.0), base)
           for a in range(0, 17)]
    out += [point(records, "min_similarity", s / 20, Setting(cfg, s / 20, ANCHOR_OFF), base) for s in range(0, 10)]
    return out


TARGETS = {"false_abstention": 0.15, "gold_contained": 0.70, "hard_abstention": 0.80, "article_abstention": 0.95}


def met(p: Point) -> int:
    """How many of issue 13's four targets a point meets (false abstention is a ceiling, the rest floors)."""
    return ((p.false_abstention <= TARGETS["false_abstention"]) + (p.gold_contained >= TARGETS["gold_contained"])
            + ((p.hard_abstention or 0.0) >= TARGETS["hard_abstention"])
            + ((p.article_abstention or 0.0) >= TARGETS["article_abstention"]))


def choose(points: list[Point]) -> Point:
    """The anchor gate's operating point: the most of the issue's targets met;
    among those, the most answerable questions answered with a gold answer plus hard unanswerables abstained
    (the two figures the gate trades); the lower threshold on a tie."""
    anchor = [p for p in points if p.gate == "min_anchor"]
    return max(anchor, key=lambda p: (met(p), p.gold_contained + (p.hard_abstention or 0.0), -p.value))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("replies", type=Path, nargs="+", help="Exports of one or more runs (pooled).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    records = [r for path in args.replies for r in load(path)]
    points = curves(records, VerifySettings(), 0.0)
    chosen = choose(points)
    with_anchor = replace(VerifySettings(), min_anchor=chosen.value)
    points += [point(records, "min_similarity+anchor", v / 20, Setting(with_anchor, v / 20),
                     Setting(with_anchor, -1.0, ANCHOR_OFF)) for v in range(0, 10)]
    if args.json:
        print(json.dumps({"points": [p.__dict__ for p in points], "chosen_min_anchor": chosen.value,
                          "model_citation_precision": model_citation_precision(records)}, indent=2))
        return
    kinds = {k: sum(r["kind"] == k for r in records) for k in ("answerable", "paragraph", "article")}
    print(f"{len(records)} replies: {kinds}; the model's own citation precision {model_citation_precision(records)}")
    print(f"{'gate':21} {'value':>5} {'false abst':>10} {'gold cont':>9} {'hard abst':>9} {'article':>8} "
          f"{'precision':>9} {'recall':>7}")
    for p in points:
        print(f"{p.gate:21} {p.value:5.2f} {p.false_abstention:10.3f} {p.gold_contained:9.3f} "
              f"{p.hard_abstention if p.hard_abstention is not None else '—':>9} "
              f"{p.article_abstention if p.article_abstention is not None else '—':>8} "
              f"{p.precision if p.precision is not None else '—':>9} {p.recall if p.recall is not None else '—':>7}"
              + ("  <- chosen" if p is chosen else ""))


if __name__ == "__main__":
    main()
