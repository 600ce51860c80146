"""What the feedback room and the web UI's thread view read from the turn store: rated turns for learning and
its replay, thumbs for review and the report, a thread's thumbs, the golden set. Every statement against ``turns``
and ``feedback`` lives in this package (chat.turns), so a change to those tables is a change here alone; deleting a
user's turns for privacy is the exception, kept with every other table's deletion in core.privacy."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row


def feedback_rows(conn: psycopg.Connection, *, down_only: bool = False, since: datetime | None = None,
                  limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first. ``citations`` is reduced to number, title, source and chunk ids (the passages stay in turns)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT f.id AS feedback_id, f.created_at, CASE WHEN f.value > 0 THEN 'up' ELSE 'down' END AS value, "
            "f.comment, f.citation, f.user_id, COALESCE(f.channel, t.channel) AS channel, t.id::text AS turn_id, "
            "t.question, t.answer, t.abstained, "
            "(SELECT COALESCE(jsonb_agg(jsonb_build_object('number', c->'number', 'title', c->'title', "
            "'source', c->'source', 'chunk_ids', c->'chunk_ids')), '[]') FROM jsonb_array_elements(t.citations) c) "
            "AS citations, COALESCE(f.sampling, t.sampling) AS sampling, t.filters, t.model, t.prompt_version "
            "FROM feedback f JOIN turns t ON t.id = f.turn_id "
            "WHERE NOT f.on_source AND (NOT %(down)s OR f.value < 0) "
            "AND (%(since)s::timestamptz IS NULL OR f.created_at >= %(since)s) "
            "ORDER BY f.created_at DESC, f.id DESC LIMIT %(limit)s",
            {"down": down_only, "since": since, "limit": limit})
        return cur.fetchall()


def latest_thumbs(conn: psycopg.Connection) -> list[tuple]:
    """(value, sampling, abstained, cited sources) per rated turn, its latest thumb on the whole answer."""
    return conn.execute(
        "SELECT DISTINCT ON (t.id) f.value, t.sampling, t.abstained, "
        "ARRAY(SELECT DISTINCT c->>'source' FROM jsonb_array_elements(t.citations) c) "
        "FROM feedback f JOIN turns t ON t.id = f.turn_id WHERE NOT f.on_source "
        "ORDER BY t.id, f.created_at DESC").fetchall()


def source_ratings(conn: psycopg.Connection) -> list[tuple]:
    """(value, source, title or uri) of every rating of a single cited source."""
    return conn.execute(
        "SELECT f.value, c->>'source', COALESCE(NULLIF(c->>'title', ''), c->>'uri') FROM feedback f "
        "JOIN turns t ON t.id = f.turn_id, jsonb_array_elements(t.citations) c "
        "WHERE f.on_source AND (c->>'number')::int = f.citation").fetchall()


def chunk_moves(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(old chunk id, new chunk id) for every passage a sync saw move to another file."""
    return conn.execute("SELECT old_id, new_id FROM chunk_moves").fetchall()


def rated_turns(conn: psycopg.Connection) -> list[tuple]:
    """(turn, question, retrieved, citations, latest thumb, chunks rated good, chunks rated bad) of every answered
    turn with any feedback, oldest first: what learning collects training pairs from."""
    return conn.execute(
        "SELECT t.id::text, COALESCE(t.standalone_question, t.question), t.retrieved, t.citations, "
        "(SELECT f.value FROM feedback f WHERE f.turn_id = t.id AND NOT f.on_source "
        " ORDER BY f.updated_at DESC, f.id DESC LIMIT 1), "
        "ARRAY(SELECT DISTINCT f.chunk_id FROM feedback f WHERE f.turn_id = t.id AND f.on_source AND f.value > 0 "
        "      AND f.chunk_id IS NOT NULL), "
        "ARRAY(SELECT DISTINCT f.chunk_id FROM feedback f WHERE f.turn_id = t.id AND f.on_source AND f.value < 0 "
        "      AND f.chunk_id IS NOT NULL) "
        "FROM turns t WHERE t.status = 'ok' AND EXISTS (SELECT 1 FROM feedback f WHERE f.turn_id = t.id) "
        "ORDER BY t.created_at, t.id").fetchall()


def thumbed_turns(conn: psycopg.Connection) -> list[tuple]:
    """(turn, latest thumb, question, filters, retrieved, citations, asker, sources rated bad) of every answered
    turn with a thumb on the whole answer: the feedback replay's cases."""
    return conn.execute(
        "SELECT DISTINCT ON (t.id) t.id::text, f.value, COALESCE(t.standalone_question, t.question), t.filters, "
        "t.retrieved, t.citations, t.user_id, "
        "ARRAY(SELECT b.citation FROM feedback b WHERE b.turn_id = t.id AND b.on_source AND b.value < 0) "
        "FROM feedback f JOIN turns t ON t.id = f.turn_id WHERE t.status = 'ok' AND NOT f.on_source "
        "ORDER BY t.id, f.created_at DESC").fetchall()


def golden(conn: psycopg.Connection) -> list[tuple]:
    """(id, turn, question, expected chunks, filters, asker) of every golden case."""
    return conn.execute(
        "SELECT g.id, g.turn_id::text, g.question, g.expected_chunk_ids, g.filters, t.user_id FROM golden_cases g "
        "LEFT JOIN turns t ON t.id = g.turn_id ORDER BY g.id").fetchall()


def turn_for_golden(conn: psycopg.Connection, turn_id: str) -> tuple | None:
    """(question, filters, citations) of a turn, or None; ValueError when ``turn_id`` is no UUID."""
    try:
        return conn.execute("SELECT COALESCE(standalone_question, question), filters, citations FROM turns "
                            "WHERE id = %s::uuid", (turn_id,)).fetchone()
    except psycopg.errors.InvalidTextRepresentation:
        raise ValueError(f"{turn_id!r} is not a turn id (a UUID)") from None


def add_golden(conn: psycopg.Connection, turn_id: str, question: str, filters: Any, chunks: list[str],
               note: str | None) -> int:
    with conn.transaction():
        gid = conn.execute(
            "INSERT INTO golden_cases (turn_id, question, filters, expected_chunk_ids, note) VALUES (%s, %s, %s, "
            "%s, %s) ON CONFLICT (turn_id) DO UPDATE SET expected_chunk_ids = EXCLUDED.expected_chunk_ids, "
            "note = EXCLUDED.note RETURNING id", (turn_id, question, json.dumps(filters), chunks, note)).fetchone()[0]
    return int(gid)


def thread_thumbs(conn: psycopg.Connection, conversation_id: str) -> list[dict[str, Any]]:
    """The latest thumb on each answer of a web thread, keyed by the UI message it belongs to."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT DISTINCT ON (t.client_ref) f.id, f.value, f.comment, t.client_ref FROM feedback f "
            "JOIN turns t ON t.id = f.turn_id WHERE t.conversation_id = %s AND t.client_ref IS NOT NULL "
            "AND NOT f.on_source ORDER BY t.client_ref, f.updated_at DESC", (conversation_id,)).fetchall()
