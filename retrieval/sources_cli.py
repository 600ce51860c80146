"""``citewise sources add|list|sync|remove``: folders whose documents follow them (retrieval/sources.py)."""

from __future__ import annotations

import typer
from rich.table import Table

from core import db
from core.cli import admin_only, console, emit_json, fail, open_url, out, settings
from core.privacy import HoldError
from retrieval import sources
from retrieval.cli import load_embedder

sources_app = typer.Typer(help="Folders that sync: new and changed files are read, deleted ones forgotten.",
                          no_args_is_help=True)


@sources_app.command("add")
def add(
    name: str = typer.Argument(..., help="The source's name; its documents carry it as their source."),
    location: str = typer.Argument(..., help="The folder to follow, or a git repository (a path or clone URL)."),
    branch: str | None = typer.Option(None, "--branch", help="Git: the branch to follow (default: the remote's)."),
    groups: list[str] = typer.Option([], "--groups", help="Access groups its documents belong to (repeatable)."),
    every: str | None = typer.Option(None, "--every", help="Sync on a schedule: 15m, 2h, 1d (workers run it)."),
    include: list[str] = typer.Option([], "--include", help="Only files whose path in the folder matches (glob)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Skip files whose path in the folder matches (glob)."),
    no_sync: bool = typer.Option(False, "--no-sync", help="Register only; the first sync runs later."),
) -> None:
    """Register a folder or a git repository as a source and sync it once."""
    cfg = settings()
    url = open_url(cfg)
    with db.connect(url, autocommit=True) as conn:
        admin_only(cfg, conn, "adding sources")
        try:
            made = sources.add(conn, sources.Source(name, location, tuple(groups), tuple(include), tuple(exclude),
                                                    sources.parse_every(every), branch=branch), cfg.home)
        except sources.SourceError as exc:
            fail(str(exc))
    out.print(f"Added source {made.name} ({made.location}" + (f" at {made.branch}" if made.branch else "") + ").")
    if not no_sync:
        _show(sources.sync(url, load_embedder(cfg), cfg, made.name))


@sources_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every source: last sync, its result and counts, failures, next scheduled run."""
    cfg = settings()
    with db.connect(open_url(cfg)) as conn:
        rows = sources.listing(conn)
    if as_json:
        emit_json(rows)
        return
    table = Table("source", "folder", "documents", "last sync", "result", "added/updated/deleted/failed", "next run")
    for r in rows:
        c = r["counts"] or {}
        table.add_row(r["name"], r["location"], str(r["documents"]),
                      f"{r['synced_at']:%Y-%m-%d %H:%M:%S}" if r["synced_at"] else "never", r["result"] or "",
                      "/".join(str(c.get(k, 0)) for k in ("added", "updated", "deleted", "failed")),
                      f"{r['next_run']:%Y-%m-%d %H:%M}" if r["next_run"] else "on demand")
    out.print(table)
    for r in rows:
        for f in r["failures"] or []:
            out.print(f"  [yellow]{r['name']}[/yellow] {f['file']}: {f['reason']}")


@sources_app.command("sync")
def sync(name: str | None = typer.Argument(None, help="The source to sync; every source when left out.")) -> None:
    """Sync now: read new and changed files, forget deleted ones."""
    cfg = settings()
    url = open_url(cfg)
    with db.connect(url) as conn:
        names = [name] if name else [r["name"] for r in sources.listing(conn)]
    if not names:
        fail("no sources yet; add one with citewise sources add NAME FOLDER")
    embedder = load_embedder(cfg)
    ok = True
    for n in names:
        try:
            res = sources.sync(url, embedder, cfg, n)
        except sources.SourceError as exc:
            if name:
                fail(str(exc))
            console.print(f"[red]{n}: {exc}[/red]")  # the other sources still sync
            ok = False
            continue
        _show(res)
        ok = ok and res.ok
    if not ok:
        raise typer.Exit(1)


@sources_app.command("remove")
def remove(
    name: str = typer.Argument(...),
    keep_documents: bool = typer.Option(False, "--keep-documents", help="Forget the source, keep its documents."),
) -> None:
    """Forget a source and delete its documents (scrubbed from stored answers, as `citewise delete` does)."""
    cfg = settings()
    with db.connect(open_url(cfg), autocommit=True) as conn:
        admin_only(cfg, conn, "removing sources")
        try:
            gone = sources.remove(conn, name, keep_documents, cfg.home)
        except (sources.SourceError, HoldError) as exc:
            fail(str(exc))
    out.print(f"Removed source {name}" + ("" if keep_documents else f" and its {gone} document(s)") + ".")


def _show(res: sources.SyncResult) -> None:
    c = res.counts
    if not res.ok:
        console.print(f"[red]{res.source}: {res.result}[/red]")
        return
    out.print(f"{res.source}: {c['files']} files, {c['read']} read ({c['added']} added, {c['updated']} updated), "
              f"{c['skipped']} unchanged, {c['deleted']} deleted, {c['failed']} failed in {res.seconds:.1f} s"
              + ("" if res.result == "ok" else f" — {res.result}"))
    for f in res.failures:
        out.print(f"  [yellow]{f['file']}[/yellow]: {f['reason']}")
