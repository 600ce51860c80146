"""The answer path's checks, old and new, replayed on answers the model already wrote: no LLM needed.

The last round's labelled answers (evals/data/support_labels.jsonl: the XQuAD report half, every sentence the model
wrote with the sources it was shown and a label by reading) are verified again under each setting:
- claims: of the cited sentences shown, the share labelled unsupported, and how many supported ones are withheld;
- answers: false abstention and gold answer in the reply on answerable questions, and on the questions whose
  sources lack the answer (gold paragraph withheld, article filtered out) the share answered with a claim.

    python -m evals.meaning.offline [--labels FILE ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.settings import VerifySettings
from evals import gates, support

WORD_CHECKS = frozenset({"unsupported", "ungrounded"})
SETTINGS: dict[str, tuple[VerifySettings, frozenset[str]]] = {
    "old: words + anchor": (replace(VerifySettings(), meaning=False), frozenset()),
    "new: meaning + words": (replace(VerifySettings(), meaning=True), frozenset()),
    "new: meaning alone": (replace(VerifySettings(), meaning=True), WORD_CHECKS),
}


def grid() -> dict[str, tuple[VerifySettings, frozenset[str]]]:
    """The old checks, then the meaning checks with the word checks at every pair of thresholds (to choose on a
    tune part)."""
    out = {"old: words + anchor": SETTINGS["old: words + anchor"]}
    for stated in (0.0, 0.2, 0.3, 0.4, 0.5):
        for answers in (0.0, 0.3, 0.5):
            out[f"stated {stated} answers {answers}"] = (
                replace(VerifySettings(), meaning=True, min_stated=stated, min_answers=answers), frozenset())
    return out


def as_replies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Labelled answers as the gate replay reads them: the model's sentences rejoined into its reply."""
    return [{**r, "raw": " ".join(s["text"] for s in r["sentences"]), "best_similarity": 1.0} for r in records]


def figures(records: list[dict[str, Any]], cfg: VerifySettings, off: frozenset[str]) -> dict[str, Any]:
    claims = support.score(records, cfg, off)
    at = gates.Setting(cfg, -1.0, off)
    xquad = [r for r in records if r["kind"] in ("answerable", "paragraph", "article")]  # XQuAD's kinds
    p = gates.point(as_replies(xquad), "setting", 0.0, at, at)
    shown = claims.true_positive + claims.false_positive
    return {"claims_shown": shown, "unsupported_shown": claims.false_positive,
            "unsupported_shown_share": round(claims.false_positive / shown, 4) if shown else None,
            "supported_withheld": claims.false_negative, "supported": claims.supported,
            "false_abstention": p.false_abstention, "gold_contained": p.gold_contained,
            "paragraph_answered": None if p.hard_abstention is None else round(1 - p.hard_abstention, 4),
            "article_answered": None if p.article_abstention is None else round(1 - p.article_abstention, 4),
            "by_reason": claims.by_reason}


def guide_figures(rows: list[dict[str, Any]], cfg: VerifySettings, off: frozenset[str]) -> dict[str, Any]:
    """A guide-format run (`citewise eval guide --out`) verified again under ``cfg``: false abstention and gold
    answers on answerable questions, right abstentions on the others. An answer that failed, or that the chain
    refused before asking the model, stays as it was."""
    from chat.engine.context import Source
    from chat.engine.meaning import for_settings
    from chat.engine.verify import verify
    from evals.guide import holds

    n = {"answerable": 0, "unanswerable": 0}
    abstained = {"answerable": 0, "unanswerable": 0}
    gold = 0
    for row in rows:
        kind = row["kind"]
        n[kind] += 1
        if "error" in row:
            abstained[kind] += kind == "answerable"
            continue
        if row.get("model_output") is None:
            shown = None
        else:
            sources = [Source(x["number"], (), x["text"]) for x in row["sources"]]
            v = verify(row["model_output"], sources, row["question"], cfg, off=off, meaning=for_settings(cfg))
            shown = None if v.abstained else v.text
        abstained[kind] += shown is None
        if kind == "answerable" and shown is not None:
            gold += holds(shown, row["answers"])
    a, u = n["answerable"] or 1, n["unanswerable"] or 1
    return {"false_abstention": round(abstained["answerable"] / a, 4), "gold_contained": round(gold / a, 4),
            "unanswerable_answered": round(1 - abstained["unanswerable"] / u, 4)}


def guide_rows(run: Path, questions: Path) -> list[dict[str, Any]]:
    """A guide run's rows with their questions' gold answers."""
    from evals.guide import load

    answers = {q["id"]: q.get("answers", []) for q in load(questions)}
    return [{**r, "answers": answers.get(r["id"], [])} for r in json.loads(run.read_text())["rows"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, nargs="*", default=[support.LABELS])
    ap.add_argument("--guide", nargs=2, action="append", type=Path, metavar=("RUN", "QUESTIONS"), default=[],
                    help="also replay a `citewise eval guide --out` run on its question set")
    ap.add_argument("--replies", type=Path, nargs="*", default=[],
                    help="also replay `citewise eval answers --sentences` exports (answer figures only)")
    ap.add_argument("--grid", action="store_true", help="every pair of meaning thresholds, not the three settings")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = grid() if args.grid else SETTINGS
    out_guide: dict[str, dict[str, Any]] = {}
    replies = [r for path in args.replies for r in gates.load(path)]
    for name, (cfg, off) in settings.items() if replies else ():
        at = gates.Setting(cfg, -1.0, off)
        p = gates.point(replies, name, 0.0, at, at)
        out_guide.setdefault("replies", {})[name] = p.__dict__
        print(f"{'replies':10} {name:28} false abst {p.false_abstention:.3f} gold {p.gold_contained:.3f} "
              f"paragraph abst {p.hard_abstention} article abst {p.article_abstention}", flush=True)
    for run, questions in args.guide:
        rows = guide_rows(run, questions)
        for name, (cfg, off) in settings.items():
            f = out_guide.setdefault(run.stem, {})[name] = guide_figures(rows, cfg, off)
            print(f"{run.stem:10} {name:28} false abst {f['false_abstention']:.3f} gold {f['gold_contained']:.3f} "
                  f"unanswerable answered {f['unanswerable_answered']:.3f}", flush=True)
    records = [r for path in args.labels for r in support.load(path)]
    out = {}
    for name, (cfg, off) in settings.items():
        out[name] = figures(records, cfg, off)
        f = out[name]
        print(f"{name:28} shown {f['claims_shown']:3} unsupported shown {f['unsupported_shown']:2} "
              f"({f['unsupported_shown_share']}) supported withheld {f['supported_withheld']}/{f['supported']} | "
              f"false abst {f['false_abstention']:.3f} gold {f['gold_contained']:.3f} "
              f"paragraph answered {f['paragraph_answered']} article answered {f['article_answered']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"labels": out, "guide": out_guide}, indent=1))


if __name__ == "__main__":
    main()
