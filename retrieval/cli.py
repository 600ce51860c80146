"""Command-line sub-commands of the retrieval layer: ingest, worker, search, delete, reindex, and the embedding
debug views (`citewise debug embeddings|neighbors`)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from core import access, db
from core.cli import admin_only, console, emit_json, fail, open_url, out, settings
from core.settings import Settings
from retrieval import filters, store


class _Rate(ProgressColumn):
    """Documents/s and chunks/s, from the task's ``chunks`` field."""

    def render(self, task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed <= 0:
            return Text("")
        return Text(f"{task.completed / elapsed:.1f} docs/s · {task.fields.get('chunks', 0) / elapsed:.1f} chunks/s",
                    style="cyan")


def parse_filters(exprs: list[str]) -> list[filters.Filter]:
    """``--filter`` options parsed, or exit 2 with the grammar's message."""
    try:
        return filters.parse_all(exprs)
    except filters.FilterError as exc:
        fail(str(exc))


def scope_of(cfg: Settings, conn) -> filters.Scope:
    """The CLI's access: everything for the operator (no CITEWISE_USER), else that user's groups."""
    who = access.OPERATOR if cfg.user is None else access.resolve(conn, cfg.user)
    return filters.Scope.of(who, cfg.public_ungrouped)


def load_embedder(cfg: Settings):
    from retrieval.embed import EmbeddingError
    from retrieval.embed import load_embedder as load

    try:
        with console.status("Loading the embedding model…"):
            return load(cfg.embedding)
    except EmbeddingError as exc:
        fail(str(exc))
        raise


def _parse_meta(items: list[str]) -> dict[str, str]:
    meta = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--meta {item!r}: write key=value, for example --meta team=platform")
        meta[key.strip()] = value.strip()
    return meta


def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or folders (recursive)."),
    source: str | None = typer.Option(None, help="Source name (default: the folder or file name)."),
    meta: list[str] = typer.Option([], help="key=value metadata on every document; repeatable."),
    groups: str = typer.Option("", help="Access groups, comma-separated."),
    author: str | None = typer.Option(None, help="Author of every document."),
    queue: bool = typer.Option(False, "--queue", help="Enqueue one job per file for `citewise worker` processes "
                               "(any number, on any machine that sees the same paths) instead of ingesting here."),
) -> None:
    """Ingest Markdown, text, HTML, PDF and BEIR JSONL: clean, scrub PII, chunk, embed, store."""
    from retrieval.ingest import IngestOptions, IngestStopped, count_inputs
    from retrieval.ingest import ingest as run

    cfg = settings()
    opts = IngestOptions(source=source, metadata=_parse_meta(meta), author=author,
                         groups=tuple(g.strip() for g in groups.split(",") if g.strip()))
    url = open_url(cfg)
    if queue:
        _enqueue(url, paths, opts)
        return
    embedder = load_embedder(cfg)
    total = count_inputs(paths)
    columns = [TextColumn("Ingesting"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("ingest", total=total, chunks=0)

            def advance(docs: int, chunks: int) -> None:
                t = progress.tasks[task]
                progress.update(task, advance=docs, chunks=t.fields["chunks"] + chunks)

            report = run(url, embedder, paths, cfg, opts, advance)
    except IngestStopped as exc:
        _summary(exc.report)
        fail(str(exc))
        raise
    except store.ModelMismatchError as exc:
        fail(str(exc))
        raise
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/yellow] Committed batches are kept; run the same command to finish.")
        raise typer.Exit(130) from None
    _summary(report)
    _replicas_caught_up(cfg, url)
    raise typer.Exit(1 if report.failed else 0)


def _replicas_caught_up(cfg: Settings, url: str) -> None:
    """Read-your-own-writes: return only once searches on every read replica see what was just ingested."""
    from core.replicas import wait_caught_up

    if not cfg.replica_urls:
        return
    with console.status("Waiting for the read replicas to replay the ingest…"):
        behind = wait_caught_up(url, cfg.replica_urls)
    for replica in behind:
        out.print(f"[yellow]note[/yellow] read replica {replica} has not replayed this ingest yet; searches skip "
                  "it while it lags more than CITEWISE_REPLICA_MAX_LAG seconds")


def _enqueue(url: str, paths: list[Path], opts) -> None:
    from retrieval import queue

    done = queue.enqueue(url, paths, opts)
    out.print(f"Queued {done.queued} file(s) for ingest workers"
              + (f"; {done.already_queued} already waiting in the queue" if done.already_queued else "")
              + ". Start workers with `citewise worker` (any number, on any machine sharing the database and "
              "these paths); `citewise worker --status` shows progress.")
    for failure in done.failures:
        out.print(f"[red]failed[/red] {failure.uri}: {failure.reason}")
    raise typer.Exit(1 if done.failures else 0)


def worker(
    until_empty: bool = typer.Option(False, "--until-empty", help="Exit when no job is left (batch runs)."),
    show_status: bool = typer.Option(False, "--status", help="Show the ingest queue's jobs by status and exit."),
) -> None:
    """Ingest files queued by `citewise ingest --queue`; run as many as you like, on any machines."""
    from retrieval import queue

    cfg = settings()
    url = open_url(cfg)
    if show_status:
        counts = queue.status(url)
        table = Table(title="Ingest queue", show_header=False)
        for name in ("todo", "doing", "succeeded", "failed", "cancelled", "aborted"):
            table.add_row(name, str(counts.get(name, 0)))
        out.print(table)
        return
    embedder = load_embedder(cfg)
    console.print(f"Worker {os.getpid()} waiting for ingest jobs (Ctrl-C finishes the job in hand, then stops).")
    queue.run_worker(url, cfg, embedder, until_empty=until_empty)


def _summary(report) -> None:
    table = Table(title="Ingest summary", show_header=False)
    for label, value in [("added", report.added), ("updated", report.updated), ("unchanged", report.unchanged),
                         ("failed", report.failed), ("chunks written", report.chunks),
                         ("chunks embedded", report.embedded), ("BM25 re-weighted", report.reweighted),
                         ("seconds", f"{report.seconds:.1f}"),
                         ("PII replaced", ", ".join(f"{k} {v}" for k, v in sorted(report.pii.items())) or "none")]:
        table.add_row(label, str(value))
    out.print(table)
    for notice in report.notices:
        out.print(f"[yellow]note[/yellow] {notice}")
    for failure in report.failures:
        out.print(f"[red]failed[/red] {failure.uri}: {failure.reason}")


def search(
    query: str = typer.Argument(..., help="What to look for."),
    k: int = typer.Option(5, "--k", min=1, max=1000, help="Number of hits."),
    filter: list[str] = typer.Option([], "--filter", help="FIELD OP VALUE, e.g. source=docs; repeatable."),
    mode: str = typer.Option("hybrid", help="vector, keyword or hybrid."),
    as_json: bool = typer.Option(False, "--json", help="Print hits as JSON."),
) -> None:
    """Hybrid search (vector + BM25, fused by reciprocal rank) with metadata filters."""
    from retrieval.search import MODES
    from retrieval.search import search as run

    cfg = settings()
    if mode not in MODES:
        fail(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    parsed = parse_filters(filter)
    url = open_url(cfg)
    embedder = load_embedder(cfg)
    with db.connect(url) as conn:
        try:
            store.check_model(conn, embedder.name, embedder.dim)
            hits = run(conn, embedder, query, scope=scope_of(cfg, conn), k=k, filters=parsed, mode=mode,
                       cfg=cfg.search)  # type: ignore[arg-type]
        except store.ModelMismatchError as exc:
            fail(str(exc))
    if as_json:
        emit_json([h.to_json() for h in hits])
        return
    if not hits:
        out.print("No matches.")
    for i, h in enumerate(hits, 1):
        where = " › ".join(h.heading_path) or h.title
        out.print(f"[bold]{i}. {h.title}[/bold]  [dim]{h.source} · {h.uri}[/dim]")
        out.print(f"   [dim]{where} · score {h.score:.4f} · vector #{h.vector_rank or '-'} · "
                  f"keyword #{h.keyword_rank or '-'}[/dim]")
        snippet = " ".join(h.text.split())
        out.print(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}")
        if h.instructions:
            out.print(f"   [yellow]⚠ {len(h.instructions)} sentence(s) here address the assistant; answers never "
                      "see them[/yellow]")


def delete(
    source: str | None = typer.Option(None, help="Delete every document of this source."),
    document: str | None = typer.Option(None, help="Delete one document by id."),
) -> None:
    """Delete documents and their chunks."""
    if (source is None) == (document is None):
        fail("give exactly one of --source NAME or --document ID")
    cfg = settings()
    from core.privacy import HoldError

    with db.connect(open_url(cfg)) as conn:
        try:
            admin_only(cfg, conn, "deleting documents")
            n = store.delete(conn, source=source, document_id=document)
            if n:
                store.reweight(conn, cfg.search)
        except HoldError as exc:
            fail(str(exc))
    out.print(f"Deleted {n} document{'s' if n != 1 else ''}.")
    if n == 0:
        raise typer.Exit(1)


def reindex() -> None:
    """Re-embed every chunk with the configured model and recompute keyword weights."""
    cfg = settings()
    url = open_url(cfg)
    embedder = load_embedder(cfg)
    with Progress(TextColumn("Re-embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("reindex", total=None)
        with db.connect(url) as conn:
            n = store.reindex(conn, embedder, cfg.search,
                              lambda done, total: progress.update(task, completed=done, total=total))
    out.print(f"Re-indexed {n} chunks with {embedder.name}.")


debug_app = typer.Typer(help="Look inside the embedding space.", no_args_is_help=True)


@debug_app.command("embeddings")
def debug_embeddings(
    out_file: Path = typer.Option(..., "--out", help="PNG file to write."),
    filter: list[str] = typer.Option([], "--filter", help="FIELD OP VALUE; repeatable."),
    limit: int = typer.Option(3000, help="At most this many chunks."),
    tsne: bool = typer.Option(True, help="Add a t-SNE panel beside PCA (slower)."),
) -> None:
    """PCA (and t-SNE) projection of chunk embeddings, coloured by source."""
    from retrieval.debug import plot

    cfg = settings()
    flt = parse_filters(filter)
    with db.connect(open_url(cfg), autocommit=True) as conn:
        try:
            counts = plot(conn, out_file, flt, scope_of(cfg, conn), limit, tsne)
        except ValueError as exc:
            fail(str(exc))
    out.print(f"Wrote {out_file}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@debug_app.command("neighbors")
def debug_neighbors(
    query: str = typer.Argument(..., help="A chunk id, or any text."),
    k: int = typer.Option(10, min=1, max=200),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The nearest chunks (exact cosine similarity) to a chunk or a text, among those you may read."""
    from dataclasses import asdict

    from retrieval.debug import neighbors

    cfg = settings()
    with db.connect(open_url(cfg), autocommit=True) as conn:
        found = neighbors(conn, load_embedder(cfg), query, scope_of(cfg, conn), k)
    if as_json:
        emit_json([asdict(n) for n in found])
        return
    table = Table(title=f"Nearest chunks to {query[:60]!r}")
    for col in ("similarity", "chunk", "source", "title", "text"):
        table.add_column(col, overflow="fold")
    for n in found:
        table.add_row(f"{n.similarity:.3f}", n.chunk_id[:12], n.source, n.title[:40], n.text[:100].replace("\n", " "))
    out.print(table)
