"""The labelling helper behind evals/data/support_labels.jsonl: print a raw export to read, then merge the labels.

    citewise eval answers ... --sentences raw.jsonl        # the model's sentences and the sources it saw
    python -m evals.label show raw.jsonl [FROM [TO]]      # question, gold, the cited passages, each sentence
    python -m evals.label merge raw.jsonl labels.txt       # append the labelled answers to support_labels.jsonl

``labels.txt`` has one line per sentence, ``ANSWER.SENTENCE S|U|N note`` (supported, unsupported, not a claim),
with the indices ``show`` prints. A sentence that is exactly the abstention text may be left out: it is labelled
``not_a_claim`` ("declines"). Every other sentence must have a line, and every line a sentence.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chat.types import ABSTAIN_TEXT
from evals.support import LABELS

CODES = {"S": "supported", "U": "unsupported", "N": "not_a_claim"}


def show(raw: Path, start: int = 0, end: int | None = None) -> None:
    for ri, r in enumerate(json.loads(line) for line in raw.read_text().splitlines()):
        if ri < start or (end is not None and ri >= end):
            continue
        cited = sorted({c for s in r["sentences"] for c in s.get("cited") or []})
        print(f"\n== {ri} [{r['kind']}] {r['question']} | gold={r['gold']} | gold paragraph={r['gold_paragraph']}")
        for src in r["sources"]:
            mark = "cited" if src["number"] in cited else "shown"
            print(f"  [{src['number']}] ({mark}) {src['uri']}: {src['text']}")
        for si, s in enumerate(r["sentences"]):
            print(f"   {ri}.{si} cited={s.get('cited')}: {s['text']}")


def merge(raw: Path, labels: Path, out: Path = LABELS) -> int:
    """Label every sentence of ``raw`` from ``labels`` and append the answers to ``out``; return the count."""
    given: dict[str, tuple[str, str]] = {}
    for n, line in enumerate(labels.read_text().splitlines(), 1):
        if not line.strip():
            continue
        key, code, *note = line.split(" ", 2)
        if code not in CODES:
            raise SystemExit(f"{labels}:{n}: label {code!r}; expected S, U or N")
        given[key] = (CODES[code], note[0] if note else "")
    records = [json.loads(line) for line in raw.read_text().splitlines()]
    used = set()
    for ri, r in enumerate(records):
        for si, s in enumerate(r["sentences"]):
            key = f"{ri}.{si}"
            if key in given:
                s["label"], s["note"] = given[key]
                used.add(key)
            elif s["text"].strip() == ABSTAIN_TEXT:
                s["label"], s["note"] = "not_a_claim", "declines"
            else:
                raise SystemExit(f"{raw}: sentence {key} has no label: {s['text']!r}")
    if unused := set(given) - used:
        raise SystemExit(f"{labels}: no such sentence: {', '.join(sorted(unused))}")
    with out.open("a") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_show = sub.add_parser("show")
    p_show.add_argument("raw", type=Path)
    p_show.add_argument("start", type=int, nargs="?", default=0)
    p_show.add_argument("end", type=int, nargs="?")
    p_merge = sub.add_parser("merge")
    p_merge.add_argument("raw", type=Path)
    p_merge.add_argument("labels", type=Path)
    p_merge.add_argument("--out", type=Path, default=LABELS)
    args = parser.parse_args()
    if args.cmd == "show":
        show(args.raw, args.start, args.end)
    else:
        print(f"{merge(args.raw, args.labels, args.out)} answers appended to {args.out}")


if __name__ == "__main__":
    main()
