"""Feedback review for maintainers: thumbs with the question, answer, citations, comment and settings they rated."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

COLUMNS = ("feedback_id", "created_at", "value", "comment", "citation", "user_id", "channel", "turn_id",
           "question", "answer", "abstained", "citations", "sampling", "filters", "model", "prompt_version")




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
