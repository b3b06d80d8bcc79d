"""Property tests: random filters parse cleanly or fail with FilterError, and evaluate like SQL.

The oracle is the embedded PostgreSQL itself: each generated condition is turned into the SQL
expression upstream Realtime evaluates (both sides cast to the column type, ``not.`` as
``NOT``), and the row passes exactly when every expression is true.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localbase.realtime.filters import FilterError, matches, parse_filter
from localbase.realtime.pgtypes import TypeRegistry
from localbase.server import LocalbaseThread

pytestmark = pytest.mark.integration

coerce = TypeRegistry().to_python
OIDS = {"int4": 23, "text": 25, "bool": 16, "numeric": 1700, "timestamptz": 1184}
COMPARISONS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


@dataclass(frozen=True)
class Case:
    """One condition: filter text, the column value it sees, and its SQL oracle."""

    column: str
    sql_type: str
    cell: str | None
    filter_text: str
    sql: str
    params: tuple[str | None, ...]


def _quote(value: str) -> str:
    """A filter value in double quotes, so commas and parentheses do not split."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_literal(items: list[str]) -> str:
    return "{" + ",".join(_quote(i) for i in items) + "}"


def _values(sql_type: str) -> st.SearchStrategy[str]:
    if sql_type == "int4":
        return st.integers(-50, 50).map(str)
    if sql_type == "numeric":
        return st.decimals(-100, 100, places=2, allow_nan=False).map(str)
    if sql_type == "bool":
        return st.sampled_from(["t", "f", "true", "false"])
    if sql_type == "timestamptz":
        base = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
        moments = st.integers(-3, 3).map(lambda h: base + timedelta(hours=h))
        return moments.map(lambda m: m.isoformat()) | moments.map(
            lambda m: m.astimezone().strftime("%Y-%m-%d %H:%M:%S%z")
        )
    return st.text(alphabet="ab,(). \"'", max_size=5)


@st.composite
def cases(draw: st.DrawFn, column: str) -> Case:
    sql_type = draw(st.sampled_from(list(OIDS)))
    cell = draw(st.none() | _values(sql_type))
    negated = draw(st.booleans())
    ops = ["eq", "neq", "lt", "lte", "gt", "gte", "in", "isdistinct", "is"]
    if sql_type == "text":
        ops += ["like", "ilike", "match", "imatch"]
    op = draw(st.sampled_from(ops))
    cast = f"$1::text::{sql_type}"
    params: tuple[str | None, ...]
    if op in COMPARISONS:
        value = draw(_values(sql_type))
        text = _quote(value)
        sql, params = f"{cast} {COMPARISONS[op]} $2::text::{sql_type}", (cell, value)
    elif op == "in":
        items = draw(st.lists(_values(sql_type), min_size=1, max_size=4))
        text = "(" + ",".join(_quote(i) for i in items) + ")"
        sql, params = f"{cast} = any($2::text::{sql_type}[])", (cell, _array_literal(items))
    elif op == "isdistinct":
        value = draw(_values(sql_type))
        text = _quote(value)
        sql, params = f"{cast} is distinct from $2::text::{sql_type}", (cell, value)
    elif op == "is":
        keywords = ["null", "true", "false", "unknown"] if sql_type == "bool" else ["null"]
        text = draw(st.sampled_from(keywords))
        sql, params = f"{cast} is {text}", (cell,)
    elif op in ("like", "ilike"):
        text = draw(st.text(alphabet="ab%_", max_size=4))
        sql, params = f"{cast} {op} $2", (cell, text)
    else:
        pieces = st.sampled_from(["a", "b", ".", "^", "$", "[ab]", "a*", "(a|b)", "[[:alpha:]]"])
        text = "".join(draw(st.lists(pieces, max_size=4)))
        sql, params = f"{cast} {'~' if op == 'match' else '~*'} $2", (cell, text)
        text = _quote(text)
    if negated:
        sql = f"not ({sql})"
    prefix = "not." if negated else ""
    return Case(column, sql_type, cell, f"{column}={prefix}{op}.{text}", sql, params)


@pytest.fixture(scope="module")
def oracle(localbase: LocalbaseThread) -> Iterator[psycopg2.extensions.cursor]:
    connection = psycopg2.connect(localbase.postgres.dsn)
    connection.autocommit = True
    try:
        yield connection.cursor()
    finally:
        connection.close()


def sql_says(cursor: psycopg2.extensions.cursor, conditions: list[Case]) -> bool:
    result = True
    for case in conditions:
        numbered = case.sql.replace("$1", "%s").replace("$2", "%s")
        cursor.execute(f"select coalesce(({numbered}), false)", case.params)
        result = result and cursor.fetchone()[0]
    return result


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True).flatmap(
    lambda columns: st.tuples(*(cases(f"c{c}") for c in columns))
))  # fmt: skip
def test_filter_evaluation_agrees_with_postgres(oracle, conditions: tuple[Case, ...]) -> None:
    text = ",".join(c.filter_text for c in conditions)
    row = {c.column: (c.cell, OIDS[c.sql_type]) for c in conditions}

    ours = matches(parse_filter(text), row, coerce)

    assert ours == sql_says(oracle, list(conditions)), text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='abc=.,()"\\ noteqinlkmsd*%', max_size=40))
def test_random_filter_text_parses_or_raises_filter_error(text: str) -> None:
    try:
        conditions = parse_filter(text)
    except FilterError as exc:
        assert str(exc).startswith("Error parsing `filter` params")
        return
    row = {"a": ("1", 23), "b": ("x", 25)}
    assert matches(conditions, row, coerce) in (True, False)
    for condition in conditions:
        assert condition.describe().startswith("{")
