"""``citewise eval ...`` sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from retrieval.cli import _fail, console, emit_json, load_embedder, open_url, out, settings

eval_app = typer.Typer(help="Measure retrieval and answer quality.", no_args_is_help=True)


@eval_app.command("retrieval")
def retrieval(
    dataset: Path = typer.Option(..., exists=True, file_okay=False, help="BEIR folder (corpus.jsonl, queries...)."),
    split: str = typer.Option("test", help="qrels/SPLIT.tsv to score."),
    mode: list[str] = typer.Option([], help="vector, keyword, hybrid, hybrid+rerank; repeatable (default: all)."),
    limit: int | None = typer.Option(None, help="Score only the first N queries."),
    corpus_limit: int | None = typer.Option(None, help="Ingest only N documents plus the judged ones."),
    exact: bool = typer.Option(False, help="Exact vector search instead of HNSW."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """nDCG@10, Recall@10/100 and MRR@10 on a BEIR dataset, per search mode, in an isolated database."""
    from evals.retrieval import EVAL_MODES, evaluate, prepare, to_json

    modes = mode or list(EVAL_MODES)
    for m in modes:
        if m not in EVAL_MODES:
            _fail(f"unknown mode {m!r}; expected one of {', '.join(EVAL_MODES)}")
    cfg = settings()
    open_url(cfg)
    embedder = load_embedder(cfg)
    with console.status("Ingesting the corpus into its isolated database (reused on later runs)…"):
        url, data = prepare(cfg, embedder, dataset, split, limit, corpus_limit)
    results = evaluate(url, data, embedder, cfg, modes, exact=exact)  # type: ignore[arg-type]
    if as_json:
        emit_json({"dataset": str(dataset), "split": split, "results": to_json(results)})
        return
    table = Table(title=f"{dataset.name} ({split}, {results[0].queries} queries)")
    for col in ("mode", "nDCG@10", "Recall@10", "Recall@100", "MRR@10", "p50 ms", "p95 ms"):
        table.add_column(col)
    for r in results:
        table.add_row(r.mode, f"{r.ndcg_at_10:.3f}", f"{r.recall_at_10:.3f}", f"{r.recall_at_100:.3f}",
                      f"{r.mrr_at_10:.3f}", f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}")
    out.print(table)


@eval_app.command("calibrate")
def calibrate(
    dataset: Path = typer.Option(..., exists=True, dir_okay=False, help="SQuAD-format JSON (e.g. XQuAD dev)."),
    max_false: float = typer.Option(0.02, help="Largest share of answerable questions allowed to abstain."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Choose CITEWISE_MIN_SIMILARITY: abstain on unanswerable questions, rarely on answerable ones."""
    from evals.calibrate import best_similarities, choose, prepare_squad

    cfg = settings()
    open_url(cfg)
    embedder = load_embedder(cfg)
    with console.status("Ingesting the paragraphs into an isolated database…"):
        url, qas = prepare_squad(cfg, embedder, dataset)
    answerable, unanswerable = best_similarities(url, embedder, cfg, qas)
    result = choose(answerable, unanswerable, max_false)
    if as_json:
        emit_json({"threshold": result.threshold, "false_abstention": result.false_abstention,
                   "correct_abstention": result.correct_abstention, "questions": result.questions})
        return
    table = Table(title=f"Abstention threshold on {dataset.name} ({result.questions} questions, each twice)")
    for col in ("min similarity", "abstains when answerable", "abstains when unanswerable"):
        table.add_column(col)
    for t, fa, ca in result.table:
        if round(t * 100) % 5 == 0 or t == result.threshold:
            table.add_row(f"{t:.2f}" + (" ← chosen" if t == result.threshold else ""), f"{fa:.1%}", f"{ca:.1%}")
    out.print(table)
    out.print(f"Set CITEWISE_MIN_SIMILARITY={result.threshold:.2f} (at most {max_false:.0%} false abstentions).")
