"""The database adapter: connect, register pgvector's types, apply numbered migrations. Nothing more."""

from __future__ import annotations

import re
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector

from core import pgserver
from core.settings import Settings


class DatabaseError(RuntimeError):
    """The database is unreachable or unusable; the message names the URL (password masked) and the fix."""


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def first_line(exc: BaseException) -> str:
    """A database error's first line (psycopg adds context lines), or its type when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on demand)."""
    if settings.database_url:
        return settings.database_url
    return pgserver.ensure_running(settings.pg_dir)


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection with pgvector's types registered; fail loudly if the extension is missing."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        reason = reason.replace(urlsplit(url).password or "\0", "***")
        raise DatabaseError(
            f"cannot connect to the database at {mask_url(url)}: {reason}. "
            "Check CITEWISE_DATABASE_URL, or unset it to use the embedded PostgreSQL."
        ) from None
    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        conn.close()
        raise DatabaseError(
            f"the database at {mask_url(url)} has no pgvector extension. Run `citewise db migrate` "
            "as a user allowed to CREATE EXTENSION vector, or use a server with pgvector installed "
            "(the pgvector/pgvector image)."
        ) from None
    return conn


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("core.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found)


def migrate(url: str) -> list[int]:
    """Apply the migrations not yet applied, each in its own transaction; return their numbers."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError:
        connect(url).close()  # raises DatabaseError with the masked URL
        raise
    applied: list[int] = []
    with conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in _migrations():
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(8317001)")
                done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,)).fetchone()
                if done:
                    continue
                try:
                    conn.execute(sql)
                except psycopg.errors.FeatureNotSupported as exc:
                    raise DatabaseError(f"migration {version:04d}_{name} failed on {mask_url(url)}: {exc}") from exc
                except psycopg.errors.UndefinedFile as exc:
                    raise DatabaseError(
                        f"the database at {mask_url(url)} lacks the pgvector extension ({exc}). "
                        "Use a server with pgvector installed (the pgvector/pgvector image) or unset "
                        "CITEWISE_DATABASE_URL to use the embedded PostgreSQL."
                    ) from None
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                applied.append(version)
    return applied


def open_database(settings: Settings) -> str:
    """Resolve the database URL, apply pending migrations, and return the URL for :func:`connect`."""
    url = database_url(settings)
    migrate(url)
    return url
