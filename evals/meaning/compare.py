"""The support-check candidates side by side in one run, on every measuring set, plus what the answer path
does with them on the last round's labelled answers.

    python -m evals.meaning.compare [--llm-sample 40] [--json OUT]

Sets (none of them trained on; the trained check saw only the tune halves):
- ``scifact-report``: SciFact train claims of the report half (evals/halves.py), their evidence sentences
  (supported), CONTRADICT evidence and other sentences of the abstract (unsupported);
- ``xquad-report-perturbed``: the XQuAD report half's gold sentences (supported) and the same sentences with the
  answer or subject swapped or negated, or set against a window without them (unsupported);
- ``last-round``: the last round's 151 cited answer sentences labelled by reading (evals/data/support_labels.jsonl,
  XQuAD report half), each against the passages its markers cite;
- every ``evals/data/pairs/*.jsonl`` labelled set (the new one, report part).
The LLM judge runs on the first ``--llm-sample`` pairs of each set (it costs seconds a claim on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from chat.engine.citations import MARKER
from evals import support
from evals.meaning import measure, pairs

PAIRS_DIR = Path(__file__).resolve().parents[1] / "data" / "pairs"


def _pair(claim: str, passage: str, ok: bool) -> measure.Pair:
    return measure.Pair(" ".join(MARKER.sub(" ", claim).split()), passage, ok)


def last_round() -> list[measure.Pair]:
    out = []
    for rec in support.load():
        by = {s["number"]: s["text"] for s in rec["sources"]}
        for s in rec["sentences"]:
            if s["label"] in ("supported", "unsupported") and s["cited"]:
                out.append(_pair(s["text"], "\n\n".join(by[n] for n in s["cited"]), s["label"] == "supported"))
    return out


def built(source: str, rows: list[dict[str, Any]] | None = None) -> list[measure.Pair]:
    """The support pairs of the report half from one source of evals/meaning/pairs.py (``rows``: already built)."""
    rows = [r for r in (rows if rows is not None else pairs.build())
            if r["task"] == "support" and r["half"] == "report" and r["source"] == source]
    return [measure.Pair(r["first"], r["second"], bool(r["label"])) for r in rows]


def sets() -> dict[str, list[measure.Pair]]:
    rows = pairs.build()
    out = {"scifact-report": built("scifact", rows), "xquad-report-perturbed": built("xquad", rows),
           "last-round": last_round()}
    for path in sorted(PAIRS_DIR.glob("*.jsonl")) if PAIRS_DIR.exists() else []:
        out[path.stem] = measure.load(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llm-sample", type=int, default=40, help="pairs per set for the LLM judge (0: skip it)")
    ap.add_argument("--only", nargs="*", help="these sets only")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    for name, ps in sets().items():
        if args.only and name not in args.only:
            continue
        sample = random.Random(5).sample(ps, min(args.llm_sample, len(ps)))
        runs = [("meaning", ps), ("words", ps)] + ([("llm", sample)] if args.llm_sample else [])
        for check, subset in runs:
            res, scores = measure.run(check, subset)
            row = {"set": name, **res.to_json()}
            if check != "llm":
                row["curve"] = [{"threshold": c.threshold, "balanced_accuracy": c.balanced_accuracy,
                                 "precision": c.precision, "recall": c.recall}
                                for c in measure.curve(subset, scores, [t / 10 for t in range(1, 10)])]
            results.append(row)
            print(f"{name:24} {check:8} n={res.pairs:4} thr={res.threshold:.2f} bal_acc={res.balanced_accuracy:.3f} "
                  f"prec={res.precision} rec={res.recall} caught={res.unsupported_caught} "
                  f"ms/claim={res.ms_per_claim} failed={res.failed}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
