"""``citewise users``, ``hold``, ``forget``, ``retention``, ``backup`` and ``restore``: access groups, legal holds,
privacy workflows, and the rollback plan."""

from __future__ import annotations

from pathlib import Path

import typer

from core import access, db, privacy
from core.cli import admin_only, emit_json, fail, open_url, out, settings

users_app = typer.Typer(help="Users and their access groups (web logins, Slack ids, API token names, CLI).",
                        no_args_is_help=True)
hold_app = typer.Typer(help="Legal holds: a held source or user cannot be deleted or forgotten.", no_args_is_help=True)


def _conn():
    cfg = settings()
    conn = db.connect(open_url(cfg), autocommit=True)
    try:
        admin_only(cfg, conn, "managing users, holds and deletions")
    except BaseException:
        conn.close()
        raise
    return conn


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Web login, Slack user id (U…), API token name or CLI identity."),
    groups: str = typer.Option("", help="Comma-separated access groups."),
    admin: bool = typer.Option(False, help="May review feedback, run evals and manage users."),
    legal_hold: bool = typer.Option(False, help="Block forgetting this user."),
) -> None:
    """Add a user or replace their groups and roles."""
    with _conn() as conn:
        access.add_user(conn, name, [g.strip() for g in groups.split(",") if g.strip()], admin, legal_hold)
    out.print(f"User {name} saved.")


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Users with their groups and roles."""
    with _conn() as conn:
        rows = access.list_users(conn)
    if as_json:
        emit_json([{"name": n, "groups": g, "admin": a, "legal_hold": h} for n, g, a, h in rows])
        return
    for n, g, a, h in rows:
        out.print(f"{n}\tgroups: {','.join(g) or '-'}" + ("\tadmin" if a else "") + ("\tlegal hold" if h else ""))


@users_app.command("remove")
def users_remove(name: str = typer.Argument(...)) -> None:
    """Remove a user's access entry (their turns stay; `citewise forget` deletes those)."""
    with _conn() as conn:
        if not access.remove_user(conn, name):
            fail(f"no user {name!r}; `citewise users list` shows them")
    out.print(f"User {name} removed.")


def _hold(on: bool, source: str | None, user: str | None, reason: str | None) -> None:
    if (source is None) == (user is None):
        fail("give exactly one of --source NAME or --user NAME")
    with _conn() as conn:
        privacy.set_hold(conn, source=source, user=user, on=on, reason=reason)
    out.print(f"Legal hold {'set on' if on else 'lifted from'} {'source ' + source if source else 'user ' + user}.")


@hold_app.command("add")
def hold_add(source: str | None = typer.Option(None), user: str | None = typer.Option(None),
             reason: str | None = typer.Option(None, help="Why (shown when a deletion is refused).")) -> None:
    """Put a source or a user under legal hold."""
    _hold(True, source, user, reason)


@hold_app.command("remove")
def hold_remove(source: str | None = typer.Option(None), user: str | None = typer.Option(None)) -> None:
    """Lift a legal hold."""
    _hold(False, source, user, None)


def forget(user: str = typer.Option(..., "--user", help="The user whose data to delete.")) -> None:
    """Delete a user's turns, feedback and web threads (refused under legal hold)."""
    with _conn() as conn:
        try:
            done = privacy.forget_user(conn, user)
        except privacy.HoldError as exc:
            fail(str(exc))
    out.print(f"Forgot {user}: {done.turns} turns, {done.feedback} feedback, {done.threads} web threads deleted.")


def retention(days: int | None = typer.Option(None, help="Override CITEWISE_RETENTION_DAYS.")) -> None:
    """Delete turns and web threads older than the retention period (users under legal hold are kept)."""
    keep = days or settings().retention_days
    if not keep:
        fail("no retention period: set CITEWISE_RETENTION_DAYS or pass --days N")
    with _conn() as conn:
        done = privacy.apply_retention(conn, keep)
    out.print(f"Retention {keep} days: {done.turns} turns, {done.feedback} feedback, {done.threads} threads deleted.")


def backup(file: Path = typer.Argument(..., help="The backup file to write (a tar archive).")) -> None:
    """Back up the whole database (pg_dump custom format) with the facts needed to use it."""
    from core.backup import BackupError
    from core.backup import backup as run

    cfg = settings()
    url = open_url(cfg)
    with db.connect(url) as conn:
        admin_only(cfg, conn, "backups")
    try:
        manifest = run(url, file)
    except BackupError as exc:
        fail(str(exc))
    rows = ", ".join(f"{t} {v['rows']}" for t, v in manifest["tables"].items())
    out.print(f"Backed up to {file}: {rows} (schema {manifest['schema_version']}, {manifest['embedding_model']}).")


def restore(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A file from `citewise backup`."),
            ) -> None:
    """Restore a backup into an empty database (a new CITEWISE_HOME or CITEWISE_DATABASE_URL) and verify it."""
    from core.backup import BackupError
    from core.backup import restore as run

    cfg = settings()
    try:
        manifest = run(file, db.database_url(cfg))
    except (BackupError, db.DatabaseError) as exc:
        fail(str(exc))
    rows = ", ".join(f"{t} {v['rows']}" for t, v in manifest["tables"].items())
    out.print(f"Restored {file}: {rows}; row counts and content hashes match the backup.")
