"""Feedback review for maintainers: thumbs with the question, answer, citations, comment and settings they rated."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

COLUMNS = ("feedback_id", "created_at", "value", "comment", "citation", "user_id", "channel", "turn_id",
           "question", "answer", "abstained", "citations", "sampling", "filters", "model", "prompt_version")


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


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps({k: _plain(v) for k, v in r.items()}, ensure_ascii=False) + "\n" for r in rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """One row per thumb; JSON columns (citations, sampling, filters) stay JSON inside their cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else _plain(v)
                         for k, v in r.items()})
    return buf.getvalue()
