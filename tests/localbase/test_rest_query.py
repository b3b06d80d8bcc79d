"""PostgREST query grammar, parsed without a database."""

import pytest

from localbase.rest.query import (
    EmbedItem,
    Filter,
    LogicTree,
    OrderTerm,
    QueryError,
    RangeError,
    SelectItem,
    parse_columns,
    parse_filter,
    parse_logic,
    parse_order,
    parse_prefer,
    parse_range_header,
    parse_select,
)


def test_simple_and_negated_filters_parse() -> None:
    assert parse_filter("status", "eq.pending") == Filter("status", "eq", "pending")
    assert parse_filter("status", "not.eq.failed") == Filter("status", "eq", "failed", True)


def test_values_may_contain_dots() -> None:
    assert parse_filter("v", "eq.1.5").value == "1.5"


def test_in_lists_honour_quotes_and_escapes() -> None:
    parsed = parse_filter("kind", 'in.(a,"b,c","d\\"e")')

    assert parsed.value == ("a", "b,c", 'd"e')


def test_is_accepts_only_its_keywords() -> None:
    assert parse_filter("x", "is.NULL").value == "null"
    with pytest.raises(QueryError):
        parse_filter("x", "is.maybe")


def test_unknown_operator_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        parse_filter("x", "between.1")


def test_logic_trees_nest() -> None:
    tree = parse_logic("or", "(a.eq.1,and(b.gt.2,c.is.null),d.not.in.(1,2))")

    assert tree == LogicTree(
        "or",
        (
            Filter("a", "eq", "1"),
            LogicTree("and", (Filter("b", "gt", "2"), Filter("c", "is", "null"))),
            Filter("d", "in", ("1", "2"), True),
        ),
    )


def test_unbalanced_logic_tree_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        parse_logic("or", "(a.eq.1,b.eq.(2)")


def test_select_with_aliases_and_star() -> None:
    assert parse_select("id,state:status,*") == [
        SelectItem("id"),
        SelectItem("status", "state"),
        SelectItem("*"),
    ]
    assert parse_select(None) == [SelectItem("*")]


def test_casts_json_paths_and_embeds_parse() -> None:
    assert parse_select("p:progress::text,params->a->>b,task_results!inner(id,n:payload)") == [
        SelectItem("progress", "p", (), "text"),
        SelectItem("params", None, (("->", "a"), ("->>", "b"))),
        EmbedItem("task_results", (SelectItem("id"), SelectItem("payload", "n")), None, None, True),
    ]
    assert parse_select("params->>a")[0].output_name == "a"


def test_spreads_aggregates_and_odd_casts_are_refused_rather_than_misread() -> None:
    for select in ("...task_results(*)", "count()", "id.sum()", "id::text;drop", "x::a b"):
        with pytest.raises(QueryError):
            parse_select(select)


def test_quantified_and_fts_operators() -> None:
    assert parse_filter("n", "gt(any).{1,2}") == Filter("n", "gt", "{1,2}", False, (), "any")
    assert parse_filter("t", "fts(english).cat").modifier == "english"
    with pytest.raises(QueryError):
        parse_filter("n", "gt(any).1")
    with pytest.raises(QueryError):
        parse_filter("n", "in(any).{1}")


def test_range_header() -> None:
    assert parse_range_header("0-9") == (0, 10)
    assert parse_range_header("items=5-") == (5, None)
    assert parse_range_header("bytes") is None
    with pytest.raises(RangeError):
        parse_range_header("5-2")


def test_order_terms() -> None:
    assert parse_order("created_at.desc.nullslast,id") == [
        OrderTerm("created_at", True, "last"),
        OrderTerm("id"),
    ]
    with pytest.raises(QueryError):
        parse_order("id.sideways")


def test_columns_accept_quoted_names() -> None:
    assert parse_columns('"kind","params"') == ["kind", "params"]


def test_prefer_collects_known_preferences() -> None:
    prefs = parse_prefer(["return=representation,count=exact", "missing=default, foo=bar"])

    assert prefs.return_ == "representation"
    assert prefs.count == "exact"
    assert prefs.missing_default
    assert prefs.applied == ["return=representation", "count=exact", "missing=default"]
