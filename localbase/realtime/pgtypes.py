"""PostgreSQL type catalogue and text-to-JSON conversion for decoded WAL values.

pgoutput sends every value in its type's text form. The real Realtime turns each one into JSON
with ``to_jsonb(value::type)``; :meth:`TypeRegistry.to_json` does the same in Python (numbers,
booleans, nested json, ISO timestamps with a ``T``, arrays as lists), and
:meth:`TypeRegistry.to_python` gives comparable values for filter evaluation.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

CATALOG_QUERY: Final = (
    "select oid::int8, typname::text, typtype::text, typelem::int8, typbasetype::int8,"
    " typcategory::text, typdelim::text from pg_catalog.pg_type"
)

_INTEGERS: Final = frozenset({"int2", "int4", "int8", "oid", "xid", "cid"})
_FLOATS: Final = frozenset({"float4", "float8"})
_NUMBERS: Final = frozenset({"int2", "int4", "int8", "oid", "float4", "float8", "numeric"})
_TRUE: Final = frozenset({"t", "true", "y", "yes", "on", "1"})
_FALSE: Final = frozenset({"f", "false", "n", "no", "off", "0"})
_TIMESTAMP: Final = re.compile(
    r"^(?P<date>\d{4,}-\d\d-\d\d) (?P<time>\d\d:\d\d:\d\d(?:\.\d+)?)"
    r"(?:(?P<hours>[+-]\d\d)(?P<minutes>:\d\d)?(?P<seconds>:\d\d)?)?$"
)


@dataclass(frozen=True, slots=True)
class PgType:
    """One ``pg_type`` row, reduced to what conversion needs."""

    oid: int
    name: str
    kind: str = "b"  # typtype: b(ase), d(omain), e(num), c(omposite), r(ange), p(seudo)
    element_oid: int = 0
    base_oid: int = 0
    category: str = "U"
    delimiter: str = ","


def _builtin(rows: Iterable[tuple[int, str, str]]) -> tuple[PgType, ...]:
    types = []
    for oid, name, category in rows:
        types.append(PgType(oid, name, category=category))
    return tuple(types)


# Fixed OIDs of the common built-in types (pg_type.dat), so decoding works before the catalogue
# is loaded; the service extends this with the live catalogue (enums, domains, other arrays).
BUILTIN_TYPES: Final = (
    *_builtin(
        [
            (16, "bool", "B"),
            (17, "bytea", "U"),
            (18, "char", "Z"),
            (19, "name", "S"),
            (20, "int8", "N"),
            (21, "int2", "N"),
            (23, "int4", "N"),
            (25, "text", "S"),
            (26, "oid", "N"),
            (114, "json", "U"),
            (700, "float4", "N"),
            (701, "float8", "N"),
            (1042, "bpchar", "S"),
            (1043, "varchar", "S"),
            (1082, "date", "D"),
            (1083, "time", "D"),
            (1114, "timestamp", "D"),
            (1184, "timestamptz", "D"),
            (1186, "interval", "T"),
            (1266, "timetz", "D"),
            (1700, "numeric", "N"),
            (2950, "uuid", "U"),
            (3802, "jsonb", "U"),
        ]
    ),
    PgType(1000, "_bool", element_oid=16, category="A"),
    PgType(1001, "_bytea", element_oid=17, category="A"),
    PgType(1005, "_int2", element_oid=21, category="A"),
    PgType(1007, "_int4", element_oid=23, category="A"),
    PgType(1009, "_text", element_oid=25, category="A"),
    PgType(1015, "_varchar", element_oid=1043, category="A"),
    PgType(1016, "_int8", element_oid=20, category="A"),
    PgType(1021, "_float4", element_oid=700, category="A"),
    PgType(1022, "_float8", element_oid=701, category="A"),
    PgType(1115, "_timestamp", element_oid=1114, category="A"),
    PgType(1182, "_date", element_oid=1082, category="A"),
    PgType(1185, "_timestamptz", element_oid=1184, category="A"),
    PgType(1231, "_numeric", element_oid=1700, category="A"),
    PgType(199, "_json", element_oid=114, category="A"),
    PgType(2951, "_uuid", element_oid=2950, category="A"),
    PgType(3807, "_jsonb", element_oid=3802, category="A"),
)


class TypeRegistry:
    """Type names and value conversion by type OID."""

    def __init__(self, types: Iterable[PgType] = BUILTIN_TYPES) -> None:
        self._types: dict[int, PgType] = {}
        self.update(types)

    def update(self, types: Iterable[PgType]) -> None:
        """Add or replace catalogue entries (for example rows of :data:`CATALOG_QUERY`)."""
        for pg_type in types:
            self._types[pg_type.oid] = pg_type

    def update_from_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Add rows shaped like the result of :data:`CATALOG_QUERY`."""
        self.update(PgType(int(r[0]), r[1], r[2], int(r[3]), int(r[4]), r[5], r[6]) for r in rows)

    def __contains__(self, oid: int) -> bool:
        return oid in self._types

    def name(self, oid: int) -> str:
        """``pg_type.typname`` of the type, as Realtime lists it in ``columns``."""
        pg_type = self._types.get(oid)
        return pg_type.name if pg_type else str(oid)

    def _resolve(self, oid: int) -> PgType | None:
        """Follow domains down to their base type."""
        pg_type = self._types.get(oid)
        for _ in range(32):
            if pg_type is None or pg_type.kind != "d":
                return pg_type
            pg_type = self._types.get(pg_type.base_oid)
        return pg_type

    def to_json(self, text: str | None, oid: int) -> Any:
        """Convert one value's text form to what ``to_jsonb(value)`` produces."""
        if text is None:
            return None
        pg_type = self._resolve(oid)
        if pg_type is None:
            return text
        if pg_type.category == "A" and pg_type.element_oid:
            try:
                items = parse_array(text, pg_type.delimiter)
            except ValueError:
                return text
            return _map_nested(items, lambda v: self.to_json(v, pg_type.element_oid))
        return _scalar_to_json(text, pg_type.name)

    def to_python(self, text: str | None, oid: int) -> Any:
        """Convert a value's text to a Python value that compares like the SQL type.

        Raises:
            ValueError: if the text is not a valid value of the type.
        """
        if text is None:
            return None
        pg_type = self._resolve(oid)
        name = pg_type.name if pg_type else ""
        if pg_type is not None and pg_type.category == "A" and pg_type.element_oid:
            items = parse_array(text, pg_type.delimiter)
            return _map_nested(items, lambda v: self.to_python(v, pg_type.element_oid))
        return _scalar_to_python(text, name)


def _scalar_to_json(text: str, name: str) -> Any:
    if name == "bool":
        return text == "t"
    if name in _NUMBERS:
        return _number(text)
    if name in ("json", "jsonb"):
        return json.loads(text)
    if name == "timestamptz":
        return _xsd_timestamp(text, with_zone=True)
    if name == "timestamp":
        return _xsd_timestamp(text, with_zone=False)
    if name == "bytea" and text.startswith("\\x"):
        return text[2:]  # wal2json, which the real service decodes with, strips the prefix
    return text


def _number(text: str) -> Any:
    """JSON number for a numeric text; NaN and infinities stay strings, as in to_jsonb."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if value == value and value not in (float("inf"), float("-inf")) else text


def _xsd_timestamp(text: str, *, with_zone: bool) -> str:
    """``2025-01-15 10:20:30.5+00`` -> ``2025-01-15T10:20:30.5+00:00`` (to_jsonb's XSD style)."""
    match = _TIMESTAMP.match(text)
    if match is None:
        return text  # infinity, -infinity, BC dates: left as PostgreSQL prints them
    result = f"{match['date']}T{match['time']}"
    if with_zone and match["hours"]:
        result += f"{match['hours']}{match['minutes'] or ':00'}{match['seconds'] or ''}"
    return result


def _scalar_to_python(text: str, name: str) -> Any:
    if name == "bool":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"invalid input syntax for type boolean: {text!r}")
    if name in _INTEGERS:
        return int(text)
    if name in _FLOATS:
        return float(text)
    if name == "numeric":
        try:
            return Decimal(text)
        except InvalidOperation as exc:
            raise ValueError(f"invalid input syntax for type numeric: {text!r}") from exc
    if name == "uuid":
        return uuid.UUID(text)
    if name in ("timestamptz", "timestamp"):
        return _parse_timestamp(text, aware=name == "timestamptz")
    if name == "date":
        return date.fromisoformat(text)
    if name in ("json", "jsonb"):
        return json.dumps(json.loads(text), sort_keys=True)
    return text


def _parse_timestamp(text: str, *, aware: bool) -> datetime:
    value = text.strip().replace(" ", "T", 1)
    if value.endswith(("z", "Z")):
        value = value[:-1] + "+00:00"
    if len(value) >= 3 and value[-3] in "+-" and value[-2:].isdigit() and "T" in value:
        value += ":00"  # "+00" -> "+00:00" for fromisoformat
    parsed = datetime.fromisoformat(value)
    if aware and parsed.tzinfo is None:
        raise ValueError(f"timestamp without time zone given for timestamptz: {text!r}")
    return parsed if aware else parsed.replace(tzinfo=None)


def parse_array(text: str, delimiter: str = ",") -> list[Any]:
    """Parse PostgreSQL's array text form into nested lists of element texts (None for NULL).

    Raises:
        ValueError: if the text is not a well-formed array literal.
    """
    if text.startswith("["):  # explicit bounds, e.g. "[0:1]={1,2}"
        text = text[text.index("=") + 1 :]
    parser = _ArrayParser(text, delimiter)
    result = parser.parse_level()
    if parser.pos != len(text):
        raise ValueError(f"trailing characters in array literal at {parser.pos}")
    return result


class _ArrayParser:
    def __init__(self, text: str, delimiter: str) -> None:
        self.text = text
        self.delimiter = delimiter
        self.pos = 0

    def _peek(self) -> str:
        if self.pos >= len(self.text):
            raise ValueError("unterminated array literal")
        return self.text[self.pos]

    def parse_level(self) -> list[Any]:
        if self._peek() != "{":
            raise ValueError(f"expected '{{' at {self.pos}")
        self.pos += 1
        items: list[Any] = []
        if self._peek() == "}":
            self.pos += 1
            return items
        while True:
            items.append(self._element())
            char = self._peek()
            self.pos += 1
            if char == "}":
                return items
            if char != self.delimiter:
                raise ValueError(f"expected delimiter at {self.pos - 1}")

    def _element(self) -> Any:
        char = self._peek()
        if char == "{":
            return self.parse_level()
        if char == '"':
            return self._quoted()
        start = self.pos
        while self._peek() not in (self.delimiter, "}"):
            self.pos += 1
        raw = self.text[start : self.pos].strip()
        return None if raw.upper() == "NULL" else raw

    def _quoted(self) -> str:
        self.pos += 1
        chars = []
        while (char := self._peek()) != '"':
            if char == "\\":
                self.pos += 1
                char = self._peek()
            chars.append(char)
            self.pos += 1
        self.pos += 1
        return "".join(chars)


def _map_nested(items: list[Any], convert: Any) -> list[Any]:
    return [_map_nested(v, convert) if isinstance(v, list) else convert(v) for v in items]
