"""The CLI kit every layer's sub-commands use: consoles, errors that exit, settings and the database, and the
``citewise db`` commands."""

from __future__ import annotations

import json
from typing import NoReturn

import typer
from rich.console import Console

from core import access, config_view, db, pgserver
from core.settings import Settings, SettingsError

console = Console(stderr=True)
out = Console()
db_app = typer.Typer(help="The embedded PostgreSQL: status, stop, migrate.", no_args_is_help=True)


def emit_json(obj: object) -> None:
    """Machine-readable output: plain JSON on stdout, never wrapped or coloured."""
    print(json.dumps(obj, indent=2, default=str))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (2: the user must change something)."""
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))


def config(as_json: bool = typer.Option(False, "--json", help="Print the listing as JSON.")) -> None:
    """The effective settings: every variable citewise reads, its value and whether it came from the environment
    or is the default. Keys, tokens and passwords (also inside URLs) are masked."""
    try:
        listing = config_view.rows()
    except SettingsError as exc:
        fail(str(exc))
    if as_json:
        emit_json(listing)
        return
    for line in config_view.lines(listing):
        print(line)


def open_url(cfg: Settings) -> str:
    """The migrated database's URL (starting the embedded server when none is configured), or exit."""
    try:
        return db.open_database(cfg)
    except (db.DatabaseError, pgserver.EmbeddedServerError) as exc:
        fail(str(exc))


def admin_only(cfg: Settings, conn, what: str) -> None:
    """With a configured CLI identity (CITEWISE_USER), ``what`` needs the admin role; the operator may do it."""
    if cfg.user is None:
        return
    try:
        access.require_admin(access.resolve(conn, cfg.user), what)
    except access.AccessError as exc:
        fail(str(exc))


@db_app.command("status")
def db_status() -> None:
    """Where the database is and what it holds."""
    cfg = settings()
    if cfg.database_url:
        url = cfg.database_url
        out.print(f"configured: {db.mask_url(url)}")
    else:
        st = pgserver.status(cfg.pg_dir)
        out.print(f"embedded PostgreSQL in {st.data_dir}: "
                  + ("running on " + str(st.url) if st.running else "initialised, stopped" if st.initialised
                     else "not initialised"))
        if not st.running:
            return
        url = st.url or ""
    try:
        db.migrate(url)
        with db.connect(url) as conn:
            docs, chunks = conn.execute("SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)"
                                        ).fetchone()
            model = conn.execute("SELECT model, dim FROM embedding_config").fetchone()
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    except db.DatabaseError as exc:
        fail(str(exc))
    out.print(f"pgvector {version} · {docs} documents · {chunks} chunks · "
              f"model {model[0] + f' ({model[1]}-d)' if model else 'none yet'}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL."""
    stopped = pgserver.stop(settings().pg_dir)
    out.print("Stopped." if stopped else "Not running.")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations."""
    try:
        applied = db.migrate(db.database_url(settings()))
    except (db.DatabaseError, pgserver.EmbeddedServerError) as exc:
        fail(str(exc))
    out.print(f"Applied {applied}." if applied else "Up to date.")
