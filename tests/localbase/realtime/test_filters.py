"""Filter strings of postgres_changes bindings: parsing and SQL-like evaluation."""

from __future__ import annotations

import pytest

from localbase.realtime.filters import FilterError, LikePattern, matches, parse_filter
from localbase.realtime.pgtypes import TypeRegistry

INT4, TEXT, UUID, BOOL, TIMESTAMPTZ, NUMERIC = 23, 25, 2950, 16, 1184, 1700
coerce = TypeRegistry().to_python
ROW = {
    "id": ("5", INT4),
    "status": ("pending", TEXT),
    "owner": ("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", UUID),
    "done": ("f", BOOL),
    "at": ("2025-01-15 10:20:30+00", TIMESTAMPTZ),
    "amount": ("12.50", NUMERIC),
    "note": (None, TEXT),
}


def passes(filter_text: str, row: dict = ROW) -> bool:
    return matches(parse_filter(filter_text), row, coerce)


@pytest.mark.parametrize(
    "filter_text",
    [
        "id=eq.5",
        "id=neq.6",
        "id=lt.6",
        "id=lte.5",
        "id=gt.4",
        "id=gte.5",
        "id=in.(1,5,9)",
        "status=in.(open,pending)",
        'status=in.("a,b",pending)',
        "owner=eq.a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "done=eq.false",
        "done=is.false",
        "note=is.null",
        "note=isdistinct.x",
        "at=gt.2025-01-15T10:00:00Z",
        "at=eq.2025-01-15 11:20:30+01",
        "amount=eq.12.5",
        "status=like.pend%",
        "status=ilike.PEND*",
        "status=not.in.(draft,archived)",
        "id=gt.1,status=eq.pending",
        'status=eq."pending"',
        "",
    ],
)
def test_matching_filters_pass(filter_text: str) -> None:
    assert passes(filter_text)


@pytest.mark.parametrize(
    "filter_text",
    [
        "id=eq.6",
        "id=neq.5",
        "id=lt.5",
        "id=gt.5",
        "id=in.(1,2)",
        "status=eq.Pending",
        "done=is.true",
        "note=eq.x",
        "note=neq.x",  # NULL compares as unknown, which does not pass
        "note=not.eq.x",
        "missing=eq.1",
        "id=eq.abc",  # not castable: never passes
        "id=gt.1,status=eq.done",
        "status=not.like.pend%",
    ],
)
def test_non_matching_filters_fail(filter_text: str) -> None:
    assert not passes(filter_text)


@pytest.mark.parametrize(
    ("filter_text", "message"),
    [
        ("id=foo.hey", 'Error parsing `filter` params: ["foo", "hey"]'),
        ("idhey", 'Error parsing `filter` params: ["idhey"]'),
        ("id=eq5", 'Error parsing `filter` params: ["eq5"]'),
        (
            "id=in.1,2",
            "Error parsing `filter` params: `in` filter value must be wrapped by parentheses",
        ),
        (
            "done=is.maybe",
            "Error parsing `filter` params: `is` filter value must be one of "
            "null, true, false or unknown",
        ),
    ],
)
def test_unparsable_filters_raise_the_real_message(filter_text: str, message: str) -> None:
    with pytest.raises(FilterError) as raised:
        parse_filter(filter_text)

    assert str(raised.value) == message


def test_in_lists_are_limited_to_one_hundred_values() -> None:
    with pytest.raises(FilterError):
        parse_filter("id=in.(" + ",".join(str(i) for i in range(101)) + ")")


def test_conditions_describe_themselves_like_the_real_service() -> None:
    (eq,), (in_,) = parse_filter("id=eq.hey"), parse_filter("s=not.in.(a,b)")

    assert eq.describe() == '{"id", "eq", "hey", false}'
    assert in_.describe() == '{"s", "in", "{a,b}", true}'


@pytest.mark.timeout(20)
def test_a_backtracking_like_pattern_is_answered_without_stalling() -> None:
    row = {"status": ("a" * 5000, TEXT)}

    assert not passes("status=like." + "%a" * 12 + "%b", row)
    assert LikePattern("%a%a%b").matches("xaxaxb")


@pytest.mark.timeout(20)
def test_a_backtracking_match_pattern_gives_up_as_no_match() -> None:
    row = {"status": ("a" * 40 + "!", TEXT)}

    assert not passes("status=match.^(a+)+$", row)
    assert passes("status=match.^(a+)+!$", row)


@pytest.mark.parametrize("filter_text", ["amount=gt.NaN", "amount=eq.sNaN", "amount=lte.NaN"])
def test_numeric_comparisons_with_nan_are_false_not_errors(filter_text: str) -> None:
    assert not passes(filter_text)
