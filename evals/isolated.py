"""Isolated databases for evals and benchmarks, on the same server as the user's but never mixing with it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from core import db


def isolated_database(base_url: str, name: str, *, fresh: bool = False) -> str:
    """Create (or reuse) database ``name`` beside ``base_url``'s, migrate it, and return its URL."""
    if not re.fullmatch(r"[a-z0-9_]{1,60}", name):
        raise ValueError(f"invalid isolated database name {name!r}")
    parts = urlsplit(base_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    target = urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db.migrate(target)
    return target
