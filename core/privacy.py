"""Privacy workflows: forget a user, apply retention, scrub deleted documents from stored answers; legal holds
block each of them with a message that says which hold and how to lift it."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

SCRUBBED = "[removed: the source document was deleted]"


class HoldError(PermissionError):
    """A legal hold blocks the deletion; the message names the hold."""


@dataclass(frozen=True)
class Forgotten:
    turns: int
    feedback: int
    threads: int


def check_source_hold(conn: psycopg.Connection, source: str) -> None:
    row = conn.execute("SELECT reason FROM source_holds WHERE source = %s", (source,)).fetchone()
    if row:
        raise HoldError(f"source {source!r} is under legal hold ({row[0] or 'no reason given'}); "
                        f"lift it first with `citewise hold remove --source {source}`")


def check_user_hold(conn: psycopg.Connection, user: str) -> None:
    if conn.execute("SELECT legal_hold FROM app_users WHERE name = %s", (user,)).fetchone() == (True,):
        raise HoldError(f"user {user!r} is under legal hold; lift it first with `citewise hold remove --user {user}`")


def set_hold(conn: psycopg.Connection, *, source: str | None = None, user: str | None = None, on: bool = True,
             reason: str | None = None) -> None:
    if source is not None:
        if on:
            conn.execute("INSERT INTO source_holds (source, reason) VALUES (%s, %s) ON CONFLICT (source) DO UPDATE "
                         "SET reason = EXCLUDED.reason", (source, reason))
        else:
            conn.execute("DELETE FROM source_holds WHERE source = %s", (source,))
    if user is not None:
        conn.execute("INSERT INTO app_users (name, legal_hold) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                     "SET legal_hold = EXCLUDED.legal_hold", (user, on))


def scrub_documents(conn: psycopg.Connection, document_ids: list[str]) -> int:
    """Replace the passages of deleted documents in stored answers (turn citations, web UI source panels),
    including answers that cited the same text under a file's earlier names (a synced file renamed)."""
    if not document_ids:
        return 0
    document_ids = [r[0] for r in conn.execute(
        "WITH RECURSIVE back(id) AS (SELECT unnest(%s::text[]) UNION SELECT m.old_document_id FROM chunk_moves m "
        "JOIN back b ON m.new_document_id = b.id) SELECT id FROM back", (document_ids,))]
    n = conn.execute(
        "UPDATE turns SET citations = (SELECT jsonb_agg(CASE WHEN c->>'document_id' = ANY(%(ids)s) "
        "THEN c || jsonb_build_object('text', %(s)s::text) ELSE c END) FROM jsonb_array_elements(citations) c) "
        "WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(citations) c WHERE c->>'document_id' = ANY(%(ids)s))",
        {"ids": document_ids, "s": SCRUBBED}).rowcount
    conn.execute("UPDATE ui_elements SET content = %s WHERE id IN (SELECT element_id FROM ui_element_sources "
                 "WHERE document_id = ANY(%s))", (SCRUBBED, document_ids))
    return n


def forget_user(conn: psycopg.Connection, user: str) -> Forgotten:
    """Delete a user's turns (with the feedback on them), their feedback on other turns, and their web threads."""
    with conn.transaction():
        check_user_hold(conn, user)
        feedback = conn.execute("DELETE FROM feedback WHERE user_id = %s", (user,)).rowcount
        feedback += conn.execute("SELECT count(*) FROM feedback f JOIN turns t ON t.id = f.turn_id "
                                 "WHERE t.user_id = %s", (user,)).fetchone()[0]
        turns = conn.execute("DELETE FROM turns WHERE user_id = %s", (user,)).rowcount
        threads = conn.execute("DELETE FROM ui_threads WHERE user_identifier = %s", (user,)).rowcount
        conn.execute("DELETE FROM ui_users WHERE identifier = %s", (user,))
    return Forgotten(turns, feedback, threads)


def apply_retention(conn: psycopg.Connection, days: int) -> Forgotten:
    """Delete turns and web threads older than ``days``, except those of users under legal hold."""
    with conn.transaction():
        held = [r[0] for r in conn.execute("SELECT name FROM app_users WHERE legal_hold")]
        feedback = conn.execute(
            "SELECT count(*) FROM feedback f JOIN turns t ON t.id = f.turn_id WHERE t.created_at < now() - "
            "make_interval(days => %s) AND NOT (t.user_id = ANY(%s))", (days, held)).fetchone()[0]
        turns = conn.execute("DELETE FROM turns WHERE created_at < now() - make_interval(days => %s) "
                             "AND (user_id IS NULL OR NOT (user_id = ANY(%s)))", (days, held)).rowcount
        threads = conn.execute("DELETE FROM ui_threads WHERE updated_at < now() - make_interval(days => %s) "
                               "AND (user_identifier IS NULL OR NOT (user_identifier = ANY(%s)))",
                               (days, held)).rowcount
    return Forgotten(turns, feedback, threads)
