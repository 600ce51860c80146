"""``citewise eval ...`` sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from core.cli import admin_only, console, emit_json, fail, open_url, out, settings
from retrieval.cli import load_embedder

eval_app = typer.Typer(help="Measure retrieval and answer quality.", no_args_is_help=True)


@eval_app.command("retrieval")
def retrieval(
    dataset: Path = typer.Option(..., exists=True, file_okay=False, help="BEIR folder (corpus.jsonl, queries...)."),
    split: str = typer.Option("test", help="qrels/SPLIT.tsv to score."),
    mode: list[str] = typer.Option([], help="vector, keyword, hybrid, hybrid+rerank; repeatable (default: all)."),
    limit: int | None = typer.Option(None, help="Score only the first N queries."),
    corpus_limit: int | None = typer.Option(None, help="Ingest only N documents plus the judged ones."),
    exact: bool = typer.Option(False, help="Exact vector search instead of HNSW."),
    half: str = typer.Option("all", help="Queries to score: tune, report (what the README reports) or all."),
    learned_version: str = typer.Option("none", "--learned", help="Search with a learned query adapter stored in "
                                        "the dataset's database: none, active, latest or a version number."),
    by_rating: bool = typer.Option(False, "--by-rating", help="Score the queries about documents rated in the "
                                   "dataset database's feedback apart from the rest (what learning should help, "
                                   "and what it must not hurt)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """nDCG@10, Recall@10/100 and MRR@10 on a BEIR dataset, per search mode, in an isolated database."""
    from evals.retrieval import EVAL_MODES, evaluate, prepare, to_json

    modes = mode or list(EVAL_MODES)
    for m in modes:
        if m not in EVAL_MODES:
            fail(f"unknown mode {m!r}; expected one of {', '.join(EVAL_MODES)}")
    cfg = settings()
    open_url(cfg)
    embedder = load_embedder(cfg)
    with console.status("Ingesting the corpus into its isolated database (reused on later runs)…"):
        url, data = prepare(cfg, embedder, dataset, split, limit, corpus_limit, half=half)
    from retrieval.learned import LearnError

    parts = {"all": data}
    if by_rating:
        from chat.feedback.collect import collect
        from core import db
        from evals.learn_split import rated_documents
        from evals.learn_split import split as by_rated

        with db.connect(url) as conn:
            parts = {f"about {k} documents": v for k, v in
                     by_rated(data, rated_documents(conn, list(collect(conn).pairs))).items()} | parts
    try:
        scored = {name: evaluate(url, part, embedder, cfg, modes, exact=exact,  # type: ignore[arg-type]
                                 learned_version=learned_version)
                  for name, part in parts.items() if part.queries}
    except LearnError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"dataset": str(dataset), "split": split, "results": to_json(scored["all"]),
                   **({"by_rating": {k: to_json(v) for k, v in scored.items()}} if by_rating else {})})
        return
    learned_note = "" if learned_version == "none" else f", learned {learned_version}"
    for name, results in scored.items():
        about = "" if name == "all" else f" {name}"
        table = Table(title=f"{dataset.name} ({split}, {results[0].queries} queries{about}{learned_note})")
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
    half: str = typer.Option("tune", help="Articles to calibrate on: tune (default), report or all."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Choose CITEWISE_MIN_SIMILARITY: abstain on unanswerable questions, rarely on answerable ones."""
    from evals.calibrate import best_similarities, choose, prepare_squad

    cfg = settings()
    open_url(cfg)
    embedder = load_embedder(cfg)
    with console.status("Ingesting the paragraphs into an isolated database…"):
        url, qas = prepare_squad(cfg, embedder, dataset)
    from evals import halves

    answerable, unanswerable = best_similarities(url, embedder, cfg, [q for q in qas if halves.keep(q.article, half)])
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


def _answer_services(cfg, dataset: Path):
    """Services on the dataset's isolated database (ingested once, reused)."""
    from chat.engine.services import open_or_exit
    from evals.calibrate import prepare_squad

    embedder = load_embedder(cfg)
    with console.status("Ingesting the paragraphs into an isolated database (reused on later runs)…"):
        url, qas = prepare_squad(cfg, embedder, dataset)
    return open_or_exit(cfg.with_database(url)), qas


def _run_answers(cfg, dataset: Path, limit: int, seed: int, half: str | None = None, hard: float = 0.25):
    from chat.desk.frontdesk import FrontDesk
    from evals.answers import run

    services, qas = _answer_services(cfg, dataset)
    try:
        with console.status(f"Asking {limit} questions through the chain…") as status:
            return run(FrontDesk(services), qas, limit, seed, hard_share=hard, half=half,
                       on_progress=lambda i, n: status.update(f"Asked {i}/{n} questions through the chain…"))
    finally:
        services.close()


@eval_app.command("answers")
def answers(
    dataset: Path = typer.Option(..., exists=True, dir_okay=False, help="SQuAD-format JSON (e.g. XQuAD dev)."),
    limit: int = typer.Option(20, min=1, help="Questions to ask (a quarter asked with their article removed)."),
    seed: int = typer.Option(0, help="Sample and sampling seed."),
    half: str = typer.Option("all", help="Articles to ask from: tune, report (what the README reports) or all."),
    hard: float = typer.Option(0.25, min=0.0, max=0.75, help="Share asked with only their gold paragraph withheld."),
    sentences_out: Path | None = typer.Option(None, "--sentences", help="Write each answer's sources and the model's "
                                              "own sentences (JSONL), to label by reading (evals/support.py)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Answer quality through the full chain: EM/F1, citation precision/recall, cited gold answer, abstention."""
    cfg = settings()
    open_url(cfg)
    result = _run_answers(cfg, dataset, limit, seed, half, hard)
    if sentences_out:
        import json

        sentences_out.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in result.sentences))
    if as_json:
        emit_json({k: v for k, v in result.to_json().items() if k not in ("latency_samples", "sentences")})
        return
    table = Table(title=f"Answers on {dataset.name}: {result.questions} questions ({result.unanswerable} unanswerable)")
    table.add_column("figure")
    table.add_column("value")
    for name in ("exact_match", "f1", "gold_contained", "citation_precision", "citation_recall",
                 "cited_gold_answer", "model_citation_precision", "model_citation_recall", "repaired_share",
                 "dropped_share", "false_abstention", "correct_abstention", "hard_abstention", "failures"):
        value = getattr(result, name)
        table.add_row(name, "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
    for stage, pct in result.latency_ms.items():
        table.add_row(f"{stage} p50 / p95", f"{pct.get('p50')} / {pct.get('p95')}")
    out.print(table)


def _ints(csv: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in csv.split(",") if x.strip())
    except ValueError:
        fail(f"{csv!r}: expected comma-separated whole numbers")
        raise


@eval_app.command("support")
def support_cmd(
    labels: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Labelled answers (JSONL; default "
                                       "evals/data/support_labels.jsonl)."),
    pairs: Path | None = typer.Option(None, "--pairs", exists=True, dir_okay=False,
                                      help='Score a support check on {"claim", "passage", "label"} lines instead.'),
    check: str = typer.Option("meaning", help="With --pairs: the check to score (meaning, words or llm)."),
    threshold: float | None = typer.Option(None, min=0.0, max=1.0,
                                           help="With --pairs: judge supported at this score (default: the "
                                                "product's setting for the check)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The verifier against sentences labelled by reading: its precision, recall and unsupported ones withheld.
    Needs no database or LLM: it re-runs today's verifier on the stored sentences and sources. With --pairs, one
    support check on any file of labelled claim/passage pairs: balanced accuracy, precision on supported, recall,
    ms per claim and the threshold used."""
    if pairs is not None:
        _support_pairs(pairs, check, threshold, as_json)
        return
    from evals import support

    try:
        records = support.load(labels or support.LABELS)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the labelled set: {exc}")
        raise
    result = support.score(records, settings().verify)
    if as_json:
        emit_json(result.to_json())
        return
    table = Table(title=f"Verifier vs {result.labelled} sentences labelled by reading ({result.answers} answers)")
    table.add_column("figure")
    table.add_column("value")
    for name in ("supported", "unsupported", "uncited", "true_positive", "false_positive", "false_negative",
                 "true_negative", "precision", "recall", "unsupported_withheld", "model_supported"):
        table.add_row(name, str(getattr(result, name)))
    for bucket, reasons in result.by_reason.items():
        table.add_row(bucket, ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "-")
    out.print(table)


def _support_pairs(path: Path, check: str, threshold: float | None, as_json: bool) -> None:
    from evals.meaning import measure

    if check not in measure.CHECKS:
        fail(f"no such check {check!r}; expected one of {', '.join(measure.CHECKS)}")
    try:
        pairs = measure.load(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail(f"cannot read the pairs: {exc}")
        raise
    with console.status(f"Scoring {len(pairs)} pairs with the {check} check…"):
        result, _ = measure.run(check, pairs, threshold)
    if as_json:
        emit_json(result.to_json())
        return
    table = Table(title=f"The {check} check on {result.pairs} pairs ({result.supported} supported, "
                        f"{result.unsupported} unsupported)")
    table.add_column("figure")
    table.add_column("value")
    for name in ("threshold", "balanced_accuracy", "precision", "recall", "unsupported_caught", "ms_per_claim",
                 "failed"):
        table.add_row(name, str(getattr(result, name)))
    out.print(table)


@eval_app.command("run")
def run_all(
    scifact: Path = typer.Option(..., exists=True, file_okay=False, help="BEIR folder for retrieval."),
    squad_file: Path = typer.Option(..., "--squad", exists=True, dir_okay=False, help="SQuAD JSON for answers."),
    out_dir: Path = typer.Option(Path("reports/latest"), "--out", help="Report folder."),
    split: str = typer.Option("train"),
    limit: int = typer.Option(40, help="Answer questions to ask."),
    query_limit: int | None = typer.Option(None, help="Retrieval: score only the first N queries."),
    corpus_limit: int | None = typer.Option(None, help="Retrieval: ingest only N documents plus judged ones."),
    ef_search: str = typer.Option("40,200", help="Comma-separated ef_search values to compare ('' for none)."),
    exact: bool = typer.Option(True, help="Compare against exact vector search."),
    chunk_tokens: str = typer.Option("", help="Comma-separated chunk sizes to compare (each is its own ingest)."),
    seed: int = typer.Option(0),
    half: str = typer.Option("all", help="SciFact queries and XQuAD articles: tune, report (README) or all."),
) -> None:
    """Retrieval and answers side by side, a report folder, and the thresholds in evals/thresholds.toml."""
    from evals.report import check_thresholds, load_thresholds, write
    from evals.retrieval import compare

    cfg = settings()
    open_url(cfg)
    embedder = load_embedder(cfg)
    with console.status("Retrieval: ingesting (reused on later runs) and scoring each configuration…"):
        retrieval_results = compare(cfg, embedder, scifact, split, limit=query_limit, corpus_limit=corpus_limit,
                                    ef_values=_ints(ef_search), exact=exact, chunk_sizes=_ints(chunk_tokens),
                                    half=half)
    answer_result = _run_answers(cfg, squad_file, limit, seed, half)
    failures = check_thresholds(load_thresholds(), retrieval_results, answer_result)
    meta = {"retrieval dataset": f"{scifact.name} ({split}, half {half})", "answers dataset": f"{squad_file.name} "
            f"(half {half})",
            "answer questions": limit, "seed": seed, "model": cfg.llm.model or "local Qwen2.5-Coder-1.5B (llama.cpp)"}
    folder = write(out_dir, retrieval_results, answer_result, failures, meta)
    out.print(f"Report written to {folder}/summary.md")
    for f in failures:
        console.print(f"[red]below threshold:[/red] {f}")
    if failures:
        raise typer.Exit(1)


@eval_app.command("replay")
def replay_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Re-run retrieval for every rated turn and golden case with today's configuration; report regressions."""
    from chat.engine.services import open_or_exit
    from chat.feedback.replay import replay
    from core import db

    cfg = settings()
    with db.connect(open_url(cfg), autocommit=True) as conn:
        admin_only(cfg, conn, "the feedback replay")
    services = open_or_exit(cfg, start_llm=False)  # retrieval only: no LLM needed
    try:
        report = replay(services)
    finally:
        services.close()
    if as_json:
        emit_json(report.to_json())
        raise typer.Exit(1 if report.regressions or report.golden_failed else 0)
    table = Table(title=f"Replay: {report.up} up-voted, {report.down} down-voted, {report.golden} golden")
    for col in ("turn", "vote", "outcome", "overlap", "question"):
        table.add_column(col, overflow="fold")
    for c in report.cases:
        table.add_row(c.turn_id[:8], {1: "👍", -1: "👎", 0: "golden"}[c.vote], c.outcome, f"{c.overlap:.2f}",
                      c.question[:70])
    out.print(table)
    out.print(f"regressions {report.regressions}/{report.up} ({report.regression_share:.0%}); down-voted turns "
              f"retrieved differently {report.changed_down}/{report.down}; golden failed "
              f"{report.golden_failed}/{report.golden}")
    if report.regressions or report.golden_failed:
        raise typer.Exit(1)


@eval_app.command("promote")
def promote_cmd(
    turn_id: str = typer.Argument(..., help="The turn to add to the golden set."),
    expect: list[str] = typer.Option([], help="Chunk ids retrieval must find (default: the ones it cited)."),
    note: str | None = typer.Option(None, help="Why this case matters."),
) -> None:
    """Add a turn to the curated golden set that `eval replay` checks."""
    from chat.feedback.replay import promote
    from core import db

    cfg = settings()
    with db.connect(open_url(cfg), autocommit=True) as conn:
        admin_only(cfg, conn, "curating the golden set")
        try:
            gid = promote(conn, turn_id, expect or None, note)
        except ValueError as exc:
            fail(str(exc))
    out.print(f"Golden case {gid} holds turn {turn_id}.")




@eval_app.command("guide")
def guide(
    questions: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Question set (JSONL; default "
                                          "evals/data/guide_questions.jsonl)."),
    seed: int = typer.Option(0, help="Sampling seed."),
    corpus: Path | None = typer.Option(None, exists=True, file_okay=False,
                                       help="Ask of this folder instead of the user guide (docs/), e.g. "
                                            "evals/data/pgdocs with --questions evals/data/pg_questions.jsonl."),
    out_file: Path | None = typer.Option(None, "--out", help="Write every reply and figure here (JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The user guide (docs/) asked as a new user asks it: refusals, gold answers, citations, abstentions, speed."""
    import json

    from chat.engine.services import open_or_exit
    from evals.guide import QUESTIONS, load, prepare, run

    cfg = settings()
    open_url(cfg)
    try:
        rows = load(questions or QUESTIONS)
    except ValueError as exc:
        fail(str(exc))
    with console.status("Ingesting the user guide into its isolated database…"):
        url = prepare(cfg, load_embedder(cfg), *([corpus] if corpus else []))
    services = open_or_exit(cfg.with_database(url))
    try:
        with console.status(f"Asking {len(rows)} questions…") as status:
            result = run(services, rows, seed, lambda i, n: status.update(f"Asked {i} of {n}…"))
    finally:
        services.close()
    if out_file:
        out_file.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    if as_json:
        emit_json({k: v for k, v in result.to_json().items() if k != "rows"})
        return
    table = Table(title=f"The user guide: {result.answerable} answerable, {result.unanswerable} unanswerable questions")
    table.add_column("figure")
    table.add_column("value")
    for name in ("false_abstention", "gold_contained", "model_citation_precision", "citation_precision",
                 "correct_abstention", "failures", "streamed_differs"):
        value = getattr(result, name)
        table.add_row(name, "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
    for stage, pct in result.latency_ms.items():
        table.add_row(f"{stage} p50 / p95", f"{pct.get('p50')} / {pct.get('p95')}")
    out.print(table)
