"""Metadata filters: a small grammar compiled with ``psycopg.sql``; values are always bound parameters.

Grammar (each ``--filter`` is one condition; conditions are ANDed)::

    source = docs            source in docs,wiki        source != drafts
    author = "Ada Lovelace"  groups = hr  (document is in group hr)     groups in hr,finance (any of)
    created >= 2024-01-01    updated < 2025-06-30T12:00  (ISO dates or date-times, UTC when no zone)
    meta.team = platform     meta.team in platform,search

The compiled condition is a predicate on ``documents`` aliased ``d``, or on ``chunks`` (which carry copies of
the same columns, migration 0011) under the alias the caller names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from psycopg import sql

from core.access import Access


class FilterError(ValueError):
    """A filter is malformed; the message lists the valid fields and operators."""


_TEXT_OPS = ("=", "!=", "in")
_DATE_OPS = ("=", "<", "<=", ">", ">=")
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # field: (column, operators)
    "source": ("source", _TEXT_OPS),
    "author": ("author", _TEXT_OPS),
    "uri": ("uri", _TEXT_OPS),
    "groups": ("access_groups", ("=", "in")),
    "tags": ("metadata", ("=", "in")),  # metadata.tags, a list (Markdown front matter ``tags: [a, b]``)
    "created": ("created_at", _DATE_OPS),
    "updated": ("updated_at", _DATE_OPS),
}
META_PREFIX = "meta."
_META_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,62}")
_EXPR = re.compile(r"^\s*([^\s=!<>]+)\s*(!=|<=|>=|=|<|>|\s+in\s+)\s*(.*?)\s*$", re.DOTALL)
_SQL_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
MAX_VALUES = 1000


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: str | datetime | tuple[str, ...]


@dataclass(frozen=True)
class Scope:
    """Which documents a search may read: every document (the operator, an eval), or those shared with
    ``groups`` plus, when ``public_ungrouped``, those without groups. Every search takes one, so no caller can
    forget access control."""

    groups: tuple[str, ...] | None  # None: everything
    public_ungrouped: bool = True

    @classmethod
    def of(cls, who: Access, public_ungrouped: bool) -> Scope:
        return cls(None if who.everything else tuple(who.groups), public_ungrouped)

    @property
    def everything(self) -> bool:
        return self.groups is None


EVERYTHING = Scope(None)


def _help() -> str:
    fields = ", ".join(f"{name} ({' '.join(ops)})" for name, (_, ops) in FIELDS.items())
    return f"valid fields: {fields}, meta.KEY (= != in)"


def _parse_date(field: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        try:
            value = datetime.combine(date.fromisoformat(raw), datetime.min.time())
        except ValueError:
            raise FilterError(
                f"{field}: {raw!r} is not a date; use ISO 8601, for example 2024-01-31 or 2024-01-31T09:30"
            ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def make(field: str, op: str, value: Any) -> Filter:
    """Validate one condition (from the grammar or from Python) and normalise its value."""
    op = op.strip().lower()
    if field.startswith(META_PREFIX):
        key = field[len(META_PREFIX):]
        if not _META_KEY.fullmatch(key):
            raise FilterError(f"invalid metadata key {key!r}: use letters, digits, '_', '-' and '.'; " + _help())
        ops: tuple[str, ...] = _TEXT_OPS
    elif field in FIELDS:
        ops = FIELDS[field][1]
    else:
        raise FilterError(f"unknown filter field {field!r}; {_help()}")
    if op not in ops:
        raise FilterError(f"invalid operator {op!r} for {field}; expected one of: {', '.join(ops)}")
    if op == "in":
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        items = tuple(_unquote(str(v).strip()) for v in items if str(v).strip())
        if not items:
            raise FilterError(f"{field} in: give at least one value, separated by commas")
        if len(items) > MAX_VALUES:
            raise FilterError(f"{field} in: at most {MAX_VALUES} values")
        return Filter(field, op, items)
    if field in ("created", "updated"):
        return Filter(field, op, value if isinstance(value, datetime) else _parse_date(field, str(value).strip()))
    text = _unquote(str(value).strip())
    if not text:
        raise FilterError(f"{field} {op}: the value is empty")
    return Filter(field, op, text)


def parse(expr: str) -> Filter:
    """Parse ``FIELD OP VALUE`` (OP one of = != < <= > >= in)."""
    m = _EXPR.match(expr)
    if not m:
        raise FilterError(f"cannot parse filter {expr!r}; write FIELD OP VALUE, for example source=docs; {_help()}")
    return make(m.group(1), m.group(2), m.group(3))


def format(f: Filter) -> str:
    """``FIELD OP VALUE`` that :func:`parse` reads back as ``f`` (values quoted when they need it)."""

    def value(v: str | datetime) -> str:
        text = v.isoformat() if isinstance(v, datetime) else v
        plain = text and text == text.strip() and not any(c in text for c in ",\"'") and text[0] not in "=!<>"
        return text if plain else f'"{text}"'

    if isinstance(f.value, tuple):
        return f"{f.field} in {','.join(value(v) for v in f.value)}"
    return f"{f.field} {f.op} {value(f.value)}"


def parse_all(exprs: list[str] | None) -> list[Filter]:
    return [parse(e) for e in exprs or []]


def _json_scalar(text: str) -> Any:
    """``text`` as the JSON number or boolean it spells, else None (stored front matter keeps ``year: 2024`` as a
    number, which a filter's text must still match)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, int | float | bool) else None


def compile_filters(filters: list[Filter], scope: Scope = EVERYTHING, table: str = "d") -> tuple[sql.Composable,
                                                                                            dict[str, Any]]:
    """An SQL predicate on ``table`` (``documents d``, or ``chunks c`` with their copied columns) for all
    conditions and the scope (TRUE when there are none) and its parameters.

    Column names come from the fixed table above as identifiers; every value, metadata keys included, is a
    named bound parameter (``%(f0)s``...), so no input ever becomes SQL text. Equality on a metadata key is a
    containment test, which the GIN index on metadata serves: very selective filters read only their rows.
    """
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    t = sql.Identifier(table)

    def bind(value: Any) -> sql.Placeholder:
        name = f"f{len(params)}"
        params[name] = value
        return sql.Placeholder(name)

    if not scope.everything:
        public = sql.SQL(" OR cardinality({}.access_groups) = 0").format(t) if scope.public_ungrouped else sql.SQL("")
        parts.append(sql.SQL("({}.access_groups && {}::text[]{})").format(t, bind(list(scope.groups or ())), public))
    for f in filters:
        if f.field.startswith(META_PREFIX) and f.op == "=":
            key = f.field[len(META_PREFIX):]
            arms = [sql.SQL("{}.metadata @> {}::jsonb").format(t, bind(json.dumps({key: f.value})))]
            scalar = _json_scalar(str(f.value))
            if scalar is not None:
                arms.append(sql.SQL("{}.metadata @> {}::jsonb").format(t, bind(json.dumps({key: scalar}))))
            parts.append(sql.SQL("({})").format(sql.SQL(" OR ").join(arms)))
            continue
        if f.field.startswith(META_PREFIX):
            column: sql.Composable = sql.SQL("({}.metadata ->> {}::text)").format(t, bind(f.field[len(META_PREFIX):]))
        else:
            column = sql.SQL("{}.{}").format(t, sql.Identifier(FIELDS[f.field][0]))
        if f.field == "tags":
            values = list(f.value) if f.op == "in" else [f.value]
            parts.append(sql.SQL("COALESCE({}.metadata -> 'tags', '[]') ?| {}::text[]").format(t, bind(values)))
        elif f.field == "groups":
            values = list(f.value) if f.op == "in" else [f.value]
            op = "&&" if f.op == "in" else "@>"
            parts.append(sql.SQL("{} {} {}::text[]").format(column, sql.SQL(op), bind(values)))
        elif f.op == "in":
            parts.append(sql.SQL("{} = ANY({}::text[])").format(column, bind(list(f.value))))
        elif f.op == "!=":
            parts.append(sql.SQL("{} IS DISTINCT FROM {}").format(column, bind(f.value)))
        else:
            parts.append(sql.SQL("{} {} {}").format(column, sql.SQL(_SQL_OPS[f.op]), bind(f.value)))
    return (sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")), params
