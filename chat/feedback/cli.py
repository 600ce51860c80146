"""``citewise feedback`` (record, list, export, report) and ``citewise learn``: the feedback room's commands."""

from __future__ import annotations

import typer
from rich.table import Table

from chat.engine.services import open_or_exit
from core.cli import admin_only, console, emit_json, fail, open_url, out, settings


class _FeedbackGroup(typer.core.TyperGroup):
    """``citewise feedback TURN up|down`` records a thumb; ``feedback list|export`` review them."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


feedback_app = typer.Typer(cls=_FeedbackGroup, no_args_is_help=True,
                           help="Record thumbs (feedback TURN_ID up|down) and review them (list, export).")


def feedback(
    turn_id: str = typer.Argument(..., help="The turn id printed after an answer."),
    value: str = typer.Argument(..., help="up or down"),
    comment: str | None = typer.Option(None, help="What was good or wrong."),
    citation: int | None = typer.Option(None, help="The citation number the feedback is about."),
) -> None:
    """Record a thumbs up or down (with an optional comment) against a turn."""
    from chat.desk.frontdesk import FrontDesk, Rating, Rejected

    cfg = settings()
    services = open_or_exit(cfg, pool_size=1, start_llm=False)
    try:
        fid = FrontDesk(services).rate(Rating(turn_id=turn_id, value=value, user_id=cfg.user, channel="cli",
                                              comment=comment, citation=citation, operator=cfg.user is None))
    except Rejected as exc:
        fail(str(exc))
    finally:
        services.close()
    out.print(f"Feedback {fid} stored for turn {turn_id}.")


def _since(value: str | None):
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since {value!r} is not a date; use ISO 8601, for example 2026-01-31")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _feedback_rows(down: bool, since: str | None, limit: int | None):
    from chat.turns.reads import feedback_rows
    from core import db

    cfg = settings()
    with db.connect(open_url(cfg), autocommit=True) as conn:
        admin_only(cfg, conn, "feedback review")
        return feedback_rows(conn, down_only=down, since=_since(since), limit=limit)


def feedback_list(
    down: bool = typer.Option(False, "--down", help="Only thumbs down."),
    since: str | None = typer.Option(None, help="Only feedback from this date on (ISO 8601)."),
    limit: int = typer.Option(50, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Thumbs with the question, answer, citations, comment and the settings used."""
    rows = _feedback_rows(down, since, limit)
    if as_json:
        emit_json([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows])
        return
    table = Table(title=f"{len(rows)} feedback")
    for col in ("when", "", "question", "answer", "comment", "preset", "turn"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["created_at"].strftime("%Y-%m-%d %H:%M"), "👍" if r["value"] == "up" else "👎",
                      r["question"][:80], (r["answer"] or "")[:120], r["comment"] or "",
                      str((r["sampling"] or {}).get("preset", "")), r["turn_id"][:8])
    out.print(table)


def feedback_export(
    output: str = typer.Option(..., "--out", help="File to write (.jsonl or .csv; '-' for standard output)."),
    fmt: str | None = typer.Option(None, "--format", help="jsonl or csv (default: from the file name)."),
    down: bool = typer.Option(False, "--down", help="Only thumbs down."),
    since: str | None = typer.Option(None, help="Only feedback from this date on (ISO 8601)."),
) -> None:
    """Export feedback with its turns to JSONL or CSV."""
    from pathlib import Path

    from chat.feedback.review import to_csv, to_jsonl

    kind = fmt or ("csv" if output.endswith(".csv") else "jsonl")
    if kind not in ("jsonl", "csv"):
        fail(f"--format {kind!r}: expected jsonl or csv")
    rows = _feedback_rows(down, since, None)
    text = to_csv(rows) if kind == "csv" else to_jsonl(rows)
    if output == "-":
        out.print(text, end="", markup=False, highlight=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    console.print(f"Wrote {len(rows)} feedback rows to {output}.")


def feedback_report(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    chart: str | None = typer.Option(None, "--chart", help="Also write a PNG chart to this file."),
) -> None:
    """Thumbs-up rate by preset, sampling buckets, source and abstention, with 95% intervals."""
    from pathlib import Path

    from chat.feedback.report import chart as draw
    from chat.feedback.report import groups
    from core import db

    cfg = settings()
    with db.connect(open_url(cfg), autocommit=True) as conn:
        admin_only(cfg, conn, "the feedback report")
        found = groups(conn)
    if chart and found:
        draw(found, Path(chart))
    if as_json:
        emit_json([g.to_json() for g in found])
        return
    table = Table(title="Thumbs-up rate by setting (each rated turn once, its latest thumb)")
    for col in ("dimension", "value", "n", "up", "rate", "95% interval"):
        table.add_column(col)
    for g in found:
        lo, hi = g.interval
        table.add_row(g.dimension, g.value, str(g.n), str(g.up), f"{g.rate:.0%}", f"{lo:.0%}–{hi:.0%}")
    out.print(table)
    if chart and found:
        out.print(f"Chart written to {chart}")



def _before_after(metrics: dict, key: str) -> str:
    """``in use → candidate`` for one gate figure; "not measured" for versions stored before the figure existed."""
    m = metrics.get(key)
    if not m:
        return "not measured"
    extra = f" ({m['questions']} questions)" if "questions" in m else ""
    return f"{m.get('in_use')} → {m.get('candidate')}{extra}"


def learn(
    status: bool = typer.Option(False, "--status", help="List the learned versions and the one in use."),
    rollback: bool = typer.Option(False, "--rollback", help="Return to the version in use before this one, now."),
    activate: int | None = typer.Option(None, "--activate", help="Put a stored version in use (skips the gate)."),
    no_promote: bool = typer.Option(False, "--no-promote", help="Train and gate, but keep the version in use."),
    min_pairs: int = typer.Option(50, min=10, help="Refuse to train on fewer training pairs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Learn a better retriever from feedback: collect training pairs, train a query adapter that acts near rated
    questions and a memory of the ratings, gate it against the version in use on feedback it never saw, questions
    about documents nobody rated, the golden set and the replay, and promote it only if it wins and loses nothing."""
    from chat.feedback.learning import learn as run
    from core import db
    from retrieval import learned
    from retrieval.learned import LearnError

    cfg = settings()
    with db.connect(open_url(cfg), autocommit=True) as conn:
        admin_only(cfg, conn, "learning from feedback")
        try:
            if status:
                found = learned.versions(conn)
                if as_json:
                    emit_json(found)
                    return
                table = Table(title="Learned retrievers")
                for col in ("version", "kind", "status", "created", "pairs",
                            "rated: held-out MRR@10 (in use → this)", "unrated: MRR@10 (in use → this)"):
                    table.add_column(col)
                for v in found:
                    table.add_row(str(v["version"]), v["kind"], v["status"], v["created_at"][:19],
                                  str(v["training"].get("train_pairs", "")),
                                  _before_after(v["metrics"], "held_out_mrr_at_10"),
                                  _before_after(v["metrics"], "unrated_mrr_at_10"))
                out.print(table if found else "No learned retriever yet: searches use the base model.")
                return
            if rollback:
                now = learned.rollback(conn)
                out.print(f"Rolled back: searches now use {f'version {now}' if now else 'the base model'}.")
                return
            if activate is not None:
                learned.activate(conn, activate)
                out.print(f"Version {activate} is in use.")
                return
        except LearnError as exc:
            fail(str(exc))
    services = open_or_exit(cfg, start_llm=False)
    try:
        with console.status("Collecting feedback, training and gating the candidate…"):
            outcome = run(services, promote=not no_promote, min_pairs=min_pairs)
    except LearnError as exc:
        fail(str(exc))
    finally:
        services.close()
    if as_json:
        emit_json(outcome.__dict__)
        return
    counts = outcome.training["counts"]
    out.print(f"Training pairs: {counts['pairs']} from {counts['turns_rated']} rated turns "
              f"({outcome.training['train_pairs']} trained on, {outcome.training['held_out_pairs']} held out); "
              f"positives: {counts['positive_marked_good']} sources marked good, {counts['positive_cited_up']} cited "
              f"in turns rated up, {counts['positive_golden']} golden; negatives: {counts['negative_marked_bad']} "
              f"marked bad, {counts['negative_retrieved_not_cited']} retrieved but not cited.")
    out.print(f"Trained in {outcome.training['seconds']} s. Version {outcome.version}: "
              f"{'promoted, in use now' if outcome.promoted else 'kept, not in use'} ({outcome.reason}).")
