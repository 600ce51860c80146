"""Property-based tests (hypothesis) for the parts with invariants: the filter grammar, the chunker, the PII
scrubber and citation markers. Fixed seed (derandomized), so CI runs the same examples every time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from chat.engine.citations import check
from core.settings import ChunkSettings
from retrieval import filters
from retrieval.chunk import split
from retrieval.clean import plain
from retrieval.pii import scrub
from retrieval.tokens import count
from retrieval.types import Document

FIXED = settings(derandomize=True, max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_WORDS = st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters=" -_.:/@é"),
                 min_size=1, max_size=20).filter(lambda v: v.strip() and v.strip()[0] not in "=!<>")
_ITEM = _WORDS.map(str.strip).filter(bool)
_DATES = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC))


@st.composite
def a_filter(draw) -> filters.Filter:
    field = draw(st.sampled_from([*filters.FIELDS, "meta.team", "meta.cost_centre"]))
    if field in ("created", "updated"):
        return filters.make(field, draw(st.sampled_from(filters.FIELDS[field][1])), draw(_DATES))
    ops = filters.FIELDS[field][1] if field in filters.FIELDS else ("=", "!=", "in")
    op = draw(st.sampled_from(ops))
    if op == "in":
        return filters.make(field, op, draw(st.lists(_ITEM, min_size=1, max_size=4)))
    return filters.make(field, op, draw(_WORDS))


@FIXED
@given(a_filter())
def test_filters_print_and_parse_back_to_themselves(f: filters.Filter) -> None:
    assert filters.parse(filters.format(f)) == f


@FIXED
@given(st.text(max_size=80))
def test_any_text_is_a_filter_or_a_clear_error(expr: str) -> None:
    try:
        filters.parse(expr)
    except filters.FilterError as exc:
        assert str(exc), "an error says what is wrong"


@FIXED
@given(st.lists(a_filter(), max_size=4), st.one_of(st.none(), st.lists(_ITEM, max_size=3)))
def test_every_valid_filter_runs_as_sql(conn: psycopg.Connection, flts: list[filters.Filter],
                                        groups: list[str] | None) -> None:
    scope = filters.EVERYTHING if groups is None else filters.Scope(tuple(groups))
    predicate, params = filters.compile_filters(flts, scope)
    conn.execute(sql.SQL("SELECT count(*) FROM documents d WHERE {}").format(predicate), params).fetchone()


_PROSE = st.lists(st.one_of(
    st.text(alphabet="abcdefghij klmnop.,!?\n", min_size=1, max_size=200),
    st.sampled_from(["# Heading\n", "\n\n", "## Sub heading\n", "- item\n", "```\ncode = 1\n```\n"])),
    min_size=1, max_size=30).map("".join)


@FIXED
@given(_PROSE, st.sampled_from([(32, 0), (48, 8), (64, 16), (200, 40)]))
def test_chunks_are_exact_covering_spans_within_the_limit(text: str, sizes: tuple[int, int]) -> None:
    doc = Document(source="s", uri="u.md", text=text, title="")
    chunks = split(doc, ChunkSettings(*sizes))
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
        assert count(c.text) <= sizes[0]
    covered = set().union(*(range(c.start, c.end) for c in chunks)) if chunks else set()
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace()), "no text falls between chunks"


_PII_TEXT = st.lists(st.one_of(
    st.text(alphabet="abc XYZ 0123456789-.@+()/:", max_size=30),
    st.sampled_from(["ada@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32",
                     "078-05-1120", "192.168.1.20", "2001:db8::1", "ISBN 978-3-16-148410-0"])),
    max_size=8).map(" ".join)


@FIXED
@given(_PII_TEXT)
def test_scrubbing_is_idempotent_and_touches_nothing_without_a_match(text: str) -> None:
    once, found = scrub(text)
    assert scrub(once)[0] == once
    if not found:
        assert once == text


@FIXED
@given(st.lists(st.one_of(st.text(alphabet="abc .", max_size=12),
                          st.lists(st.integers(0, 12), min_size=1, max_size=3).map(
                              lambda ns: "[" + ", ".join(map(str, ns)) + "]")), max_size=10).map("".join),
       st.integers(0, 6))
def test_citation_markers_only_ever_name_sources_that_exist(text: str, n_sources: int) -> None:
    checked = check(text, n_sources)
    numbers = [int(n) for m in re.findall(r"\[([\d,\s]+)\]", checked.text) for n in re.findall(r"\d+", m)]
    assert all(1 <= n <= n_sources for n in numbers)
    assert set(checked.cited) == set(numbers) and all(1 <= n <= n_sources for n in checked.cited)
    assert check(checked.text, n_sources).text == checked.text, "checking twice changes nothing"


@FIXED
@given(st.text(alphabet=st.characters(codec=None, blacklist_categories=()), max_size=80))
def test_what_users_type_becomes_storable_text(conn: psycopg.Connection, text: str) -> None:
    """Any string (NULs, lone surrogates, control characters) is made storable by ``plain`` without touching
    printable text; the fuzzer found a NUL in a question reaching PostgreSQL as an error."""
    out = plain(text)
    assert "\x00" not in out and plain(out) == out
    if text.isprintable():
        assert out == text
    assert conn.execute("SELECT %s::text", (out,)).fetchone()[0] == out
