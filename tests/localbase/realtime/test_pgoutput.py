"""pgoutput decoding and value conversion, checked against bytes captured from PostgreSQL 16.

data/pgoutput_capture.json comes from capture_pgoutput.py: each transaction's raw pgoutput
messages next to ``to_jsonb`` of the same rows, read from the server after the commit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from localbase.realtime.pgoutput import (
    UNCHANGED,
    DecodeError,
    Relation,
    Transaction,
    TransactionAssembler,
    decode_message,
)
from localbase.realtime.pgtypes import TypeRegistry, parse_array

CAPTURE = json.loads((Path(__file__).parent / "data" / "pgoutput_capture.json").read_text())


@pytest.fixture
def transactions() -> list[Transaction]:
    assembler = TransactionAssembler()
    result = []
    for captured in CAPTURE["transactions"]:
        for hex_message in captured["messages"]:
            if (transaction := assembler.feed(bytes.fromhex(hex_message))) is not None:
                result.append(transaction)
    return result


@pytest.fixture
def registry() -> TypeRegistry:
    types = TypeRegistry()
    types.update_from_rows(CAPTURE["types"])
    return types


def record(registry: TypeRegistry, relation: Relation, values: tuple) -> dict:
    return {
        column.name: registry.to_json(value, column.type_oid)
        for column, value in zip(relation.columns, values, strict=True)
        if value is not UNCHANGED
    }


def test_every_captured_transaction_is_assembled_with_its_changes(transactions) -> None:
    kinds = [[(c.kind, c.relation.name) for c in t.changes] for t in transactions]

    assert kinds == [
        [("INSERT", "everything")],
        [("INSERT", "everything")],
        [("UPDATE", "everything")],
        [("INSERT", "plain"), ("UPDATE", "plain")],
        [("DELETE", "plain")],
        [("DELETE", "everything")],
        [],  # TRUNCATE is never delivered
        [("INSERT", "toasty"), ("UPDATE", "toasty")],
    ]


def test_commit_metadata_is_decoded(transactions) -> None:
    first, second = transactions[0], transactions[1]

    assert first.commit_time.tzinfo is UTC
    assert datetime(2024, 1, 1, tzinfo=UTC) < first.commit_time <= second.commit_time
    assert 0 < first.commit_lsn < first.end_lsn <= second.commit_lsn
    assert first.xid < second.xid


def test_relation_message_carries_columns_types_and_key(transactions) -> None:
    relation = transactions[0].changes[0].relation

    assert (relation.schema, relation.name, relation.replica_identity) == (
        "capture",
        "everything",
        "d",
    )
    assert [c.name for c in relation.key_columns] == ["id"]
    assert relation.columns[1].name == "flag" and relation.columns[1].type_oid == 16


@pytest.mark.parametrize("row_index", [0, 1])
def test_insert_values_convert_like_to_jsonb(transactions, registry, row_index) -> None:
    change = transactions[row_index].changes[0]
    expected = CAPTURE["transactions"][row_index]["rows_after"][str(row_index + 1)]

    converted = record(registry, change.relation, change.new)

    # bytea is the one deliberate difference: wal2json (used by the real service) drops "\x"
    if expected["raw"] is not None:
        assert converted.pop("raw") == expected.pop("raw")[2:]
    assert converted == expected


def test_update_with_default_identity_has_no_old_tuple(transactions, registry) -> None:
    change = transactions[2].changes[0]

    assert change.old is None
    new = record(registry, change.relation, change.new)
    assert (new["regular"], new["label"]) == (43, "new")


def test_replica_identity_full_sends_whole_old_rows(transactions, registry) -> None:
    update = transactions[3].changes[1]
    delete = transactions[4].changes[0]

    assert not update.old_is_key_only
    assert record(registry, update.relation, update.old) == {"id": 7, "note": "first"}
    assert record(registry, delete.relation, delete.old) == {"id": 7, "note": "second"}


def test_delete_with_default_identity_sends_only_the_key(transactions, registry) -> None:
    change = transactions[5].changes[0]

    assert change.old_is_key_only
    old = record(registry, change.relation, change.old)
    assert {k: v for k, v in old.items() if v is not None} == {"id": 2}


def test_unchanged_toast_values_are_marked(transactions) -> None:
    insert, update = transactions[7].changes

    assert insert.new == ("1", "x" * 5000, "1")
    assert update.new == ("1", UNCHANGED, "2")


def test_truncated_message_raises_decode_error() -> None:
    message = bytes.fromhex(CAPTURE["transactions"][0]["messages"][3])

    with pytest.raises(DecodeError):
        decode_message(message[:-3])


def test_unknown_message_type_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_message(b"Z\x00")


def test_change_before_its_relation_is_an_error() -> None:
    assembler = TransactionAssembler()
    begin = bytes.fromhex(CAPTURE["transactions"][1]["messages"][0])
    insert = bytes.fromhex(CAPTURE["transactions"][1]["messages"][1])
    assembler.feed(begin)

    with pytest.raises(DecodeError):
        assembler.feed(insert)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", []),
        ("{1,2}", ["1", "2"]),
        ('{"a,b",NULL,"NULL"}', ["a,b", None, "NULL"]),
        ('{"x\\\\y","q\\"r"}', ["x\\y", 'q"r']),
        ("{{1,2},{3,4}}", [["1", "2"], ["3", "4"]]),
        ("[0:1]={7,8}", ["7", "8"]),
    ],
)
def test_array_literals_parse(text, expected) -> None:
    assert parse_array(text) == expected


@pytest.mark.parametrize(
    ("text", "oid", "expected"),
    [
        ("2025-06-01 00:00:00+05:30", 1184, "2025-06-01T00:00:00+05:30"),
        ("2025-06-01 00:00:00-03", 1184, "2025-06-01T00:00:00-03:00"),
        ("infinity", 1184, "infinity"),
        ("2025-06-01 12:00:00", 1114, "2025-06-01T12:00:00"),
        ("NaN", 1700, "NaN"),
        ("-7", 20, -7),
        ("1.5e10", 701, 1.5e10),
        ("f", 16, False),
    ],
)
def test_scalar_values_convert_like_to_jsonb(text, oid, expected) -> None:
    assert TypeRegistry().to_json(text, oid) == expected


def test_unclosed_array_raises() -> None:
    with pytest.raises(ValueError):
        parse_array("{1,2")
