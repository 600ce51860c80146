"""The turn store: recording turns and feedback in PostgreSQL, reading a conversation's history back.

Doors never write SQL of their own against ``turns`` or ``feedback``: they go through the front desk, which checks
who may rate a turn (chat.desk.frontdesk) and then calls these functions."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from chat.telemetry import SOURCE_THUMBS, THUMBS
from chat.types import Answer, Question, RetrievedRecord
from retrieval.clean import plain


def _json(value: Any) -> str:
    return json.dumps(value, default=str)  # filter values may be dates


class FeedbackError(ValueError):
    """Feedback that cannot be stored (unknown turn, bad value or citation); the message says which."""


def record_turn(conn: psycopg.Connection, q: Question, answer: Answer, retrieved: list[RetrievedRecord],
                prompt_name: str | None, status: str = "ok", error: str | None = None) -> str:
    """Insert the turn in its own transaction and return its id."""
    columns = {"conversation_id": q.conversation_id, "user_id": q.user_id, "channel": q.channel,
               "question": q.text, "filters": [{"field": f.field, "op": f.op, "value": f.value} for f in q.filters],
               "sampling": q.sampling.to_json(), "retrieved": [r.to_json() for r in retrieved],
               "prompt_name": prompt_name, "status": status, "error": error, "client_ref": q.client_ref,
               **answer.stored()}
    values = [Jsonb(v, dumps=_json) if isinstance(v, list | dict) else v for v in columns.values()]
    statement = sql.SQL("INSERT INTO turns ({}) VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    with conn.transaction():
        row = conn.execute(statement, values).fetchone()
    return str(row[0])


_VALUES = {"up": 1, "down": -1, 1: 1, -1: -1, "1": 1, "-1": -1}


def _value(value: str | int) -> int:
    numeric = _VALUES.get(value)  # type: ignore[call-overload]
    if numeric is None:
        raise FeedbackError(f"feedback value {value!r} is not one of: up, down")
    return numeric


def _checked(value: str | int, turn_id: str, comment: str | None) -> tuple[int, str, str | None]:
    """A thumb's value, turn id and comment as stored, or FeedbackError naming what is wrong."""
    try:
        turn_id = str(uuid.UUID(str(turn_id)))
    except ValueError:
        raise FeedbackError(f"{turn_id!r} is not a turn id (a UUID)") from None
    # PostgreSQL text cannot hold a NUL or a lone surrogate
    return _value(value), turn_id, None if comment is None else plain(comment)


def record_feedback(conn: psycopg.Connection, turn_id: str, value: str | int, comment: str | None = None,
                    citation: int | None = None, user_id: str | None = None, channel: str | None = None) -> int:
    """Store a thumbs up (``up``/1) or down (``down``/-1) against a turn; committed before this returns.

    The turn's sampling settings are copied onto the row, so a feedback report needs no join to read them. A
    ``citation`` (the source the thumb is about) is also stored as that source's own rating (:func:`rate_source`).
    """
    numeric, turn_id, comment = _checked(value, turn_id, comment)
    with conn.transaction():
        row = conn.execute("SELECT sampling FROM turns WHERE id = %s::uuid", (turn_id,)).fetchone()
        if row is None:
            raise FeedbackError(f"no turn with id {turn_id}")
        if citation is not None:
            cited = conn.execute("SELECT EXISTS (SELECT 1 FROM turns, jsonb_array_elements(citations) c "
                                 "WHERE id = %s AND (c->>'number')::int = %s)", (turn_id, citation)).fetchone()[0]
            if not cited:
                raise FeedbackError(f"turn {turn_id} has no citation [{citation}]")
        fid = conn.execute(
            "INSERT INTO feedback (turn_id, value, comment, citation, user_id, channel, sampling) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (turn_id, numeric, comment, citation, user_id, channel, json.dumps(row[0])),
        ).fetchone()[0]
        if citation is not None:  # a thumb that names a source rates that source too (one shape for learning)
            rate_source(conn, turn_id, citation, numeric, user_id, channel, comment)
    THUMBS.labels("up" if numeric > 0 else "down").inc()
    return int(fid)


def rate_source(conn: psycopg.Connection, turn_id: str, citation: int, value: str | int,
                user_id: str | None = None, channel: str | None = None, comment: str | None = None) -> int:
    """A thumb on one cited source: "this passage was (up) / was not (down) what I needed". Stored against the
    turn, the source's number and the chunk it showed, so learning (``citewise learn``) reads it without guessing;
    one per user, source and turn (a second click changes it). Every door lands here: the web UI's per-source
    buttons, Slack's feedback modal when it names a source, the API."""
    numeric, turn_id, comment = _checked(value, turn_id, comment)
    with conn.transaction():
        turn = conn.execute("SELECT sampling FROM turns WHERE id = %s::uuid", (turn_id,)).fetchone()
        if turn is None:
            raise FeedbackError(f"no turn with id {turn_id}")
        row = conn.execute("SELECT c->'chunk_ids'->>0 FROM turns, jsonb_array_elements(citations) c "
                           "WHERE id = %s AND (c->>'number')::int = %s", (turn_id, citation)).fetchone()
        if row is None:
            raise FeedbackError(f"turn {turn_id} has no citation [{citation}]")
        existing = conn.execute("SELECT id FROM feedback WHERE turn_id = %s AND on_source AND citation = %s "
                                "AND user_id IS NOT DISTINCT FROM %s", (turn_id, citation, user_id)).fetchone()
        if existing:
            conn.execute("UPDATE feedback SET value = %s, comment = COALESCE(%s, comment), updated_at = now() "
                         "WHERE id = %s", (numeric, comment, existing[0]))
            return int(existing[0])
        fid = conn.execute(
            "INSERT INTO feedback (turn_id, value, comment, citation, user_id, channel, sampling, chunk_id, "
            "on_source) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true) RETURNING id",
            (turn_id, numeric, comment, citation, user_id, channel, json.dumps(turn[0]), row[0])).fetchone()[0]
    SOURCE_THUMBS.labels("up" if numeric > 0 else "down").inc()
    return int(fid)


@dataclass(frozen=True)
class Asked:
    """Who asked a turn, and in which conversation: what the desk needs to decide who may rate it."""

    user_id: str | None
    conversation_id: str


def asked(conn: psycopg.Connection, turn_id: str) -> Asked | None:
    """The asker and conversation of ``turn_id``; None when there is no such turn (FeedbackError: not a turn id)."""
    try:
        turn_id = str(uuid.UUID(str(turn_id)))
    except ValueError:
        raise FeedbackError(f"{turn_id!r} is not a turn id (a UUID)") from None
    row = conn.execute("SELECT user_id, conversation_id FROM turns WHERE id = %s", (turn_id,)).fetchone()
    return Asked(row[0], row[1]) if row else None


def cited_sources(conn: psycopg.Connection, turn_id: str) -> list[tuple[int, str]]:
    """(number, title or source) of each source a turn cited, for a door that lets the rater pick one."""
    row = conn.execute("SELECT citations FROM turns WHERE id = %s", (turn_id,)).fetchone()
    return [(int(c["number"]), str(c["title"] or c["source"])) for c in (row[0] if row else [])]


def feedback_owner(conn: psycopg.Connection, feedback_id: int) -> str | None:
    row = conn.execute("SELECT user_id FROM feedback WHERE id = %s", (feedback_id,)).fetchone()
    return row[0] if row else None


def turn_for_ref(conn: psycopg.Connection, client_ref: str) -> str | None:
    """The turn a caller recorded under its own id (a UI run step, a Slack message), or None."""
    with conn.cursor(row_factory=tuple_row) as cur:  # whatever rows the caller's connection makes (the web UI's)
        row = cur.execute("SELECT id FROM turns WHERE client_ref = %s ORDER BY created_at DESC LIMIT 1",
                          (client_ref,)).fetchone()
    return str(row[0]) if row else None


def update_feedback(conn: psycopg.Connection, feedback_id: int, value: str | int, comment: str | None,
                    user_id: str | None = None) -> bool:
    """Change a stored thumb (the user clicked the other one, or edited the comment); False when it is not theirs."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE feedback SET value = %s, comment = %s, updated_at = now() "
            "WHERE id = %s AND user_id IS NOT DISTINCT FROM %s RETURNING id",
            (_value(value), comment, feedback_id, user_id)).fetchone()
    return row is not None


def annotate_feedback(conn: psycopg.Connection, feedback_id: int, comment: str | None, citation: int | None,
                      user_id: str | None) -> None:
    """Add the comment (and the source it is about) to a thumb stored at the click, as Slack's modal does. A named
    source also gets the thumb as its own rating (:func:`rate_source`), the shape the web UI's per-source buttons
    store, so learning reads one shape whichever door it came through."""
    with conn.transaction():
        row = conn.execute("SELECT turn_id, value, channel FROM feedback WHERE id = %s "
                           "AND user_id IS NOT DISTINCT FROM %s", (feedback_id, user_id)).fetchone()
        if row is None:
            raise FeedbackError(f"no feedback {feedback_id} of yours")
        if citation is not None:
            cited = conn.execute("SELECT EXISTS (SELECT 1 FROM turns, jsonb_array_elements(citations) c "
                                 "WHERE id = %s AND (c->>'number')::int = %s)", (row[0], citation)).fetchone()[0]
            if not cited:
                raise FeedbackError(f"that answer has no citation [{citation}]")
        conn.execute("UPDATE feedback SET comment = %s, citation = %s, updated_at = now() WHERE id = %s",
                     (comment, citation, feedback_id))
        if citation is not None:
            rate_source(conn, str(row[0]), citation, int(row[1]), user_id, row[2], comment)


def delete_feedback(conn: psycopg.Connection, feedback_id: int, user_id: str | None = None) -> bool:
    with conn.transaction():
        row = conn.execute("DELETE FROM feedback WHERE id = %s AND user_id IS NOT DISTINCT FROM %s RETURNING id",
                           (feedback_id, user_id)).fetchone()
    return row is not None


def history(conn: psycopg.Connection, conversation_id: str, user_id: str | None, limit: int) -> list[tuple[str, str]]:
    """The last ``limit`` (question, answer) pairs this user had in a conversation, oldest first."""
    rows = conn.execute(
        "SELECT question, answer FROM turns WHERE conversation_id = %s AND user_id IS NOT DISTINCT FROM %s "
        "AND status = 'ok' ORDER BY created_at DESC LIMIT %s", (conversation_id, user_id, limit)).fetchall()
    return [(q, a or "") for q, a in reversed(rows)]
