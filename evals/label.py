"""The labelling helper behind evals/data/support_labels.jsonl: print a raw export to read, then merge the labels.

    citewise eval answers ... --sentences raw.jsonl        # the model's sentences and the sources it saw
    python -m evals.label show raw.jsonl [FROM [TO]]      # question, gold, the cited passages, each sentence
    python -m evals.label merge raw.jsonl labels.txt       # append the labelled answers to support_labels.jsonl

A set labelled twice (two readers who never see each other's labels), settled by a third reading:

    python -m evals.label from-guide guide.json raw.jsonl  # `citewise eval guide --out` replies as a raw export
    python -m evals.label combine OUT raw1.jsonl raw2.jsonl ...  # one export, a claim asked twice kept once
    python -m evals.label agree A.txt B.txt                # Cohen's kappa, and the sentences they differ on
    python -m evals.label settle A.txt B.txt C.txt OUT.txt # their label where A and B agree, else C's

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


def from_guide(replies: Path, out: Path) -> int:
    """`citewise eval guide --out` replies as a raw export (each answer's sources and the model's own sentences)."""
    from evals.support import model_sentences

    records = [{"qa": row["id"], "kind": row["kind"], "question": row["question"], "gold": row.get("answers", []),
                "gold_paragraph": None, "sources": row["sources"],
                "sentences": model_sentences(row.get("model_output"), {s["number"] for s in row["sources"]})}
               for row in json.loads(replies.read_text())["rows"] if "sources" in row]
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return len(records)


def combine(out: Path, raws: list[Path]) -> tuple[int, int]:
    """The answers of ``raws`` in one export; a sentence already met for the same question (the same words,
    case and spacing aside) is left out, so a claim asked again under another seed counts once."""
    seen: set[tuple[str, str]] = set()
    records, dropped = [], 0
    for raw in raws:
        for line in raw.read_text().splitlines():
            r = json.loads(line)
            keep = []
            for s in r["sentences"]:
                key = (r["question"], " ".join(s["text"].lower().split()))
                if key in seen:
                    dropped += 1
                    continue
                seen.add(key)
                keep.append(s)
            if keep:
                records.append({**r, "sentences": keep})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return len(records), dropped


def read_labels(path: Path) -> dict[str, str]:
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            key, code, *_ = line.split(" ", 2)
            if code not in CODES:
                raise SystemExit(f"{path}:{n}: label {code!r}; expected S, U or N")
            out[key] = code
    return out


def kappa(a: dict[str, str], b: dict[str, str]) -> tuple[float, float, list[str]]:
    """Cohen's kappa of two readers over the sentences both labelled, their raw agreement, and where they differ."""
    keys = sorted(set(a) & set(b))
    if not keys:
        raise SystemExit("the two label files share no sentence")
    agree = sum(a[k] == b[k] for k in keys) / len(keys)
    chance = sum((sum(a[k] == c for k in keys) / len(keys)) * (sum(b[k] == c for k in keys) / len(keys))
                 for c in CODES)
    return (round((agree - chance) / (1 - chance), 4) if chance < 1 else 1.0), round(agree, 4), \
        [k for k in keys if a[k] != b[k]]


def settle(a: Path, b: Path, c: Path, out: Path) -> int:
    """Final labels: A's and B's where they agree, the third reading's where they do not."""
    la, lb, lc = read_labels(a), read_labels(b), read_labels(c)
    if set(la) != set(lb):
        raise SystemExit(f"{a} and {b} label different sentences: {sorted(set(la) ^ set(lb))[:5]}")
    lines, missing = [], []
    for k in sorted(la, key=lambda k: tuple(int(x) for x in k.split("."))):
        if la[k] == lb[k]:
            lines.append(f"{k} {la[k]} agreed")
        elif k in lc:
            lines.append(f"{k} {lc[k]} settled by a third reading ({la[k]}/{lb[k]})")
        else:
            missing.append(k)
    if missing:
        raise SystemExit(f"{c}: no third reading for {', '.join(missing[:10])}")
    out.write_text("\n".join(lines) + "\n")
    return len(lines)


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
    p_guide = sub.add_parser("from-guide")
    p_guide.add_argument("replies", type=Path)
    p_guide.add_argument("out", type=Path)
    p_comb = sub.add_parser("combine")
    p_comb.add_argument("out", type=Path)
    p_comb.add_argument("raws", type=Path, nargs="+")
    p_agree = sub.add_parser("agree")
    p_agree.add_argument("a", type=Path)
    p_agree.add_argument("b", type=Path)
    p_settle = sub.add_parser("settle")
    for name in ("a", "b", "c", "out"):
        p_settle.add_argument(name, type=Path)
    args = parser.parse_args()
    if args.cmd == "from-guide":
        print(f"{from_guide(args.replies, args.out)} answers written to {args.out}")
    elif args.cmd == "combine":
        n, dropped = combine(args.out, args.raws)
        print(f"{n} answers written to {args.out}; {dropped} repeated sentences left out")
    elif args.cmd == "agree":
        k, agree, differ = kappa(read_labels(args.a), read_labels(args.b))
        print(f"Cohen's kappa {k}, agreement {agree}, {len(differ)} differ: {' '.join(differ)}")
    elif args.cmd == "settle":
        print(f"{settle(args.a, args.b, args.c, args.out)} labels written to {args.out}")
    elif args.cmd == "show":
        show(args.raw, args.start, args.end)
    else:
        print(f"{merge(args.raw, args.labels, args.out)} answers appended to {args.out}")


if __name__ == "__main__":
    main()
