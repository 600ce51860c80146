from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retrieval import filters
from retrieval.filters import FilterError, compile_filters
from tests.corpus import documents, store_documents


def matching(conn, exprs: list[str]) -> set[str]:
    """The documents a filter selects, checked to be the same through the columns copied onto chunks."""
    from psycopg import sql

    predicate, params = compile_filters(filters.parse_all(exprs))
    rows = conn.execute(sql.SQL("SELECT d.uri FROM documents d WHERE {}").format(predicate), params).fetchall()
    on_chunks, params = compile_filters(filters.parse_all(exprs), table="c")
    via_chunks = conn.execute(sql.SQL("SELECT DISTINCT c.uri FROM chunks c WHERE {}").format(on_chunks),
                              params).fetchall()
    assert {r[0] for r in via_chunks} == {r[0] for r in rows}, exprs
    return {r[0] for r in rows}


@pytest.fixture
def loaded(conn, embedder, settings):
    store_documents(conn, embedder, settings, documents())
    return conn


@pytest.mark.parametrize(
    "exprs,expected",
    [
        ([], {"vacation.md", "expenses.md", "deploy.md", "oncall.md"}),
        (["source=wiki"], {"deploy.md", "oncall.md"}),
        (["source != wiki"], {"vacation.md", "expenses.md"}),
        (["source in handbook, wiki"], {"vacation.md", "expenses.md", "deploy.md", "oncall.md"}),
        (['author="Ada"'], {"vacation.md", "oncall.md"}),
        (["author in Grace,Linus"], {"expenses.md", "deploy.md"}),
        (["groups=hr"], {"vacation.md", "oncall.md"}),
        (["groups in finance,eng"], {"expenses.md", "deploy.md", "oncall.md"}),
        (["created>=2025-01-01"], {"deploy.md", "oncall.md"}),
        (["created<2024-06-15"], {"vacation.md"}),
        (["created<=2024-06-15"], {"vacation.md", "expenses.md"}),
        (["created>2025-01-10T00:00:00+00:00"], {"oncall.md"}),
        (["created = 2025-09-01"], {"oncall.md"}),
        (["meta.team=platform"], {"deploy.md", "oncall.md"}),
        (["meta.team in people,finance"], {"vacation.md", "expenses.md"}),
        (["meta.lang=en"], {"vacation.md"}),
        (["meta.lang != en"], {"expenses.md", "deploy.md", "oncall.md"}),
        (["source=wiki", "author=Ada"], {"oncall.md"}),
        (["source=wiki", "created<2020-01-01"], set()),
        # hostile values are just values: bound parameters, never SQL
        (["source=wiki' OR '1'='1"], set()),
        (["author=x; DROP TABLE documents; --"], set()),
        (["meta.team=platform' OR 1=1 --"], set()),
        (["source in wiki,' OR 1=1 --"], {"deploy.md", "oncall.md"}),
    ],
)
def test_valid_filters_select_the_right_documents(loaded, exprs: list[str], expected: set[str]) -> None:
    assert matching(loaded, exprs) == expected
    assert loaded.execute("SELECT count(*) FROM documents").fetchone()[0] == 4


@pytest.mark.parametrize(
    "expr,message",
    [
        ("colour=red", "unknown filter field 'colour'"),
        ("source ~ wiki", "cannot parse filter"),
        ("source > wiki", "invalid operator '>' for source; expected one of: =, !=, in"),
        ("created in 2024-01-01", "invalid operator 'in' for created"),
        ("groups != hr", "invalid operator '!=' for groups"),
        ("created>=yesterday", "is not a date; use ISO 8601"),
        ("updated<2024-13-45", "is not a date"),
        ("source=", "the value is empty"),
        ("source in ,,", "give at least one value"),
        ("meta.te'am=x", "invalid metadata key"),
        ("meta.=x", "invalid metadata key"),
        ("d.id=1; DROP TABLE chunks", "unknown filter field"),
        ("source) OR (1=1", "cannot parse filter"),
        ("", "cannot parse filter"),
    ],
)
def test_invalid_filters_are_rejected_with_the_valid_options(expr: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        filters.parse(expr)
    assert message in str(info.value)
    if "unknown filter field" in message or "cannot parse" in message:
        assert "valid fields: source" in str(info.value) and "meta.KEY" in str(info.value)


def test_filters_from_python_values() -> None:
    f = filters.make("created", ">=", datetime(2024, 1, 1, tzinfo=UTC))
    assert f.value == datetime(2024, 1, 1, tzinfo=UTC)
    assert filters.make("source", "in", ["a", "b"]).value == ("a", "b")
    naive = filters.parse("updated<2024-05-01T10:00")
    assert naive.value == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_compiled_sql_binds_every_value() -> None:
    predicate, params = compile_filters(filters.parse_all(["source=evil'--", "meta.k'ey=v"[:0] + "meta.key=v"]))
    text = predicate.as_string(None)
    assert "evil" not in text and "key" not in text
    # metadata equality is a containment test: key and value travel inside one bound JSON document
    assert set(params.values()) == {"evil'--", '{"key": "v"}'}
    predicate, params = compile_filters(filters.parse_all(["meta.key!=v", "meta.year=2024"]), table="c")
    assert "key" not in predicate.as_string(None) and "c" in predicate.as_string(None)
    assert set(params.values()) == {"key", "v", '{"year": "2024"}', '{"year": 2024}'}


def test_chunk_copies_follow_a_changed_document(loaded) -> None:
    """The filter columns on chunks (migration 0011) follow an in-place change of their document, and metadata
    equality still matches values stored as JSON numbers or booleans."""
    loaded.execute("UPDATE documents SET access_groups = '{audit}', "
                   "metadata = metadata || '{\"year\": 2024, \"draft\": true}' WHERE uri = 'deploy.md'")
    assert matching(loaded, ["groups=audit"]) == {"deploy.md"}
    assert matching(loaded, ["meta.year=2024"]) == {"deploy.md"}
    assert matching(loaded, ["meta.draft=true"]) == {"deploy.md"}
    assert matching(loaded, ["meta.year=2025"]) == set()
    stale = loaded.execute("SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE "
                           "(c.source, c.uri, c.access_groups, c.metadata) IS DISTINCT FROM "
                           "(d.source, d.uri, d.access_groups, d.metadata) OR c.author IS DISTINCT FROM d.author "
                           "OR c.created_at IS DISTINCT FROM d.created_at").fetchone()[0]
    assert stale == 0
