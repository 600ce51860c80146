"""Who is asking: a user's access groups and roles, resolved from ``app_users``.

The front desk resolves an :class:`Access` once per request; retrieval turns it into a required search scope
(``retrieval.filters.Scope``), so restricted chunks are excluded inside the search statement, before ranking.

Documents without groups are public when ``public_ungrouped`` (the default); a user unknown to ``app_users`` has no
groups. The operator running the CLI without ``CITEWISE_USER`` reads everything (they own the database anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Access:
    user: str | None
    groups: tuple[str, ...] = ()
    admin: bool = False
    everything: bool = False  # the operator: no restriction


OPERATOR = Access(None, admin=True, everything=True)


class AccessError(PermissionError):
    """The user may not do this; the message says who may."""


def resolve(conn: psycopg.Connection, user: str | None) -> Access:
    if user is None:
        return Access(None)
    row = conn.execute("SELECT groups, admin FROM app_users WHERE name = %s", (user,)).fetchone()
    return Access(user, tuple(row[0]), bool(row[1])) if row else Access(user)


def require_admin(access: Access, what: str) -> None:
    if not access.admin:
        raise AccessError(f"{what} is for admins; {access.user or 'this user'} is not one "
                          "(`citewise users add NAME --admin` makes one)")


def add_user(conn: psycopg.Connection, name: str, groups: list[str], admin: bool, legal_hold: bool) -> None:
    conn.execute("INSERT INTO app_users (name, groups, admin, legal_hold) VALUES (%s, %s, %s, %s) "
                 "ON CONFLICT (name) DO UPDATE SET groups = EXCLUDED.groups, admin = EXCLUDED.admin, "
                 "legal_hold = EXCLUDED.legal_hold", (name, sorted(set(groups)), admin, legal_hold))


def list_users(conn: psycopg.Connection) -> list[tuple[str, list[str], bool, bool]]:
    return conn.execute("SELECT name, groups, admin, legal_hold FROM app_users ORDER BY name").fetchall()


def remove_user(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM app_users WHERE name = %s RETURNING 1", (name,)).fetchone() is not None
