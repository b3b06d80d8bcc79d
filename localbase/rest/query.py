"""PostgREST's query string grammar (protocol doc §3.2), parsed without touching SQL.

Everything here turns request text into small frozen values; :mod:`localbase.rest.sql` turns
those into SQL with quoted identifiers and bound values. Parse errors are
:class:`QueryError`, which the service answers with 400 ``PGRST100``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

OPERATORS = frozenset(
    {"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in", "is",
     "isdistinct", "cs", "cd", "ov", "sl", "sr", "nxr", "nxl", "adj", "fts", "plfts", "phfts",
     "wfts"}
)  # fmt: skip
QUANTIFIABLE = frozenset(
    {"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch"}
)
FTS_OPERATORS = frozenset({"fts", "plfts", "phfts", "wfts"})
IS_VALUES = frozenset({"null", "not_null", "true", "false", "unknown"})
RESERVED_PARAMS = frozenset(
    {"select", "columns", "on_conflict", "order", "limit", "offset", "and", "or", "not.and",
     "not.or", "apikey"}
)  # fmt: skip
# A cast target: one word, optionally an array (``text``, ``int4``, ``text[]``). No spaces
# or punctuation, so a cast can never become an expression.
_CAST = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\])?$")
_OPERATOR = re.compile(r"^([a-z]+)(?:\(([A-Za-z0-9_]+)\))?$")
_JSON_ARROW = re.compile(r"->>?")

JsonPath = tuple[tuple[str, str], ...]  # (("->", "a"), ("->>", "b"))


class QueryError(Exception):
    """A query parameter that does not parse; ``details`` says where."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


@dataclass(frozen=True)
class Filter:
    column: str
    operator: str
    value: str | tuple[str, ...]
    negated: bool = False
    path: JsonPath = ()
    modifier: str | None = None  # "any" | "all" for quantified operators, fts config


@dataclass(frozen=True)
class LogicTree:
    operator: str  # "and" | "or"
    children: tuple[Filter | LogicTree, ...]
    negated: bool = False


@dataclass(frozen=True)
class SelectItem:
    column: str  # "*" for all columns
    alias: str | None = None
    path: JsonPath = ()
    cast: str | None = None

    @property
    def output_name(self) -> str:
        """The JSON key: the alias, else the last JSON path key, else the column."""
        if self.alias:
            return self.alias
        return self.path[-1][1] if self.path else self.column


@dataclass(frozen=True)
class EmbedItem:
    """``alias:relation!hint!inner(items)``: rows of a table joined by a foreign key."""

    relation: str
    items: tuple[SelectItem | EmbedItem, ...]
    alias: str | None = None
    hint: str | None = None
    inner: bool = False

    @property
    def output_name(self) -> str:
        return self.alias or self.relation


@dataclass(frozen=True)
class OrderTerm:
    column: str
    descending: bool = False
    nulls: str | None = None  # "first" | "last" | None
    path: JsonPath = ()


@dataclass
class Preferences:
    return_: str | None = None  # "representation" | "minimal" | "headers-only"
    count: str | None = None  # "exact" | "planned" | "estimated"
    missing_default: bool = False
    resolution: str | None = None  # "merge-duplicates" | "ignore-duplicates"
    strict: bool = False  # handling=strict
    max_affected: int | None = None
    timezone: str | None = None
    applied: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def parse_field(text: str) -> tuple[str, JsonPath]:
    """Parse ``col``, ``"a col"`` or ``col->a->>b`` into the column and its JSON path."""
    parts = _JSON_ARROW.split(text.strip())
    arrows = _JSON_ARROW.findall(text.strip())
    name = _identifier(_unquote(parts[0]))
    path = []
    for arrow, key in zip(arrows, parts[1:], strict=True):
        key = _unquote(key.strip())
        if not key:
            raise QueryError(f'"failed to parse json path ({text})"', "empty key after an arrow")
        path.append((arrow, key))
    return name, tuple(path)


def parse_filter(column: str, raw: str, *, in_tree: bool = False) -> Filter:
    """Parse ``<column>=[not.]<op>[(any|all|<fts config>)].<value>`` (query string form).

    Inside logic trees (``in_tree``) a value may be double-quoted, e.g. ``s.eq."a,b"``.
    """
    name, path = parse_field(column)
    negated = False
    text = raw
    if text.startswith("not."):
        negated, text = True, text[4:]
    token, dot, value = text.partition(".")
    match = _OPERATOR.match(token) if dot else None
    if match is None or match[1] not in OPERATORS:
        raise QueryError(
            f'"failed to parse filter ({raw})" (line 1, column 1)',
            f"unknown or missing operator {token!r}; expected one of "
            + ", ".join(sorted(OPERATORS)),
        )
    operator, modifier = match[1], match[2]
    if modifier is not None:
        if operator in QUANTIFIABLE and modifier in {"any", "all"}:
            if not (value.startswith("{") and value.endswith("}")):
                raise QueryError(
                    f'"failed to parse filter ({raw})"',
                    f"{operator}({modifier}) expects a list like {{a,b}}",
                )
        elif operator not in FTS_OPERATORS:
            raise QueryError(
                f'"failed to parse filter ({raw})"',
                f"{operator} takes no ({modifier}); any/all apply to "
                + ", ".join(sorted(QUANTIFIABLE)),
            )
    if operator == "in":
        return Filter(name, operator, _parse_in_list(value, raw), negated, path)
    if operator == "is":
        if value.lower() not in IS_VALUES:
            raise QueryError(
                f'"failed to parse filter ({raw})"',
                "is expects null, not_null, true, false or unknown",
            )
        return Filter(name, operator, value.lower(), negated, path)
    if in_tree and modifier is None:
        value = _unquote(value)
    return Filter(name, operator, value, negated, path, modifier)


def parse_logic(key: str, raw: str) -> LogicTree:
    """Parse ``or=(a.eq.1,and(b.gt.2,c.is.null))`` and ``not.or=(...)``."""
    negated = key.startswith("not.")
    operator = key[4:] if negated else key
    if not (raw.startswith("(") and raw.endswith(")")):
        raise QueryError(f'"failed to parse logic tree ({raw})"', "expected (...)")
    return LogicTree(operator, _parse_children(raw[1:-1], raw), negated)


def _parse_children(text: str, raw: str) -> tuple[Filter | LogicTree, ...]:
    children: list[Filter | LogicTree] = []
    for item in _split_top_level(text, raw):
        negated = item.startswith("not.")
        body = item[4:] if negated else item
        for operator in ("and", "or"):
            if body.startswith(f"{operator}(") and body.endswith(")"):
                children.append(
                    LogicTree(operator, _parse_children(body[len(operator) + 1 : -1], raw), negated)
                )
                break
        else:
            column, dot, rest = _split_column(item)
            if not dot:
                raise QueryError(f'"failed to parse logic tree ({raw})"', f"bad filter {item!r}")
            children.append(parse_filter(column, rest, in_tree=True))
    if not children:
        raise QueryError(f'"failed to parse logic tree ({raw})"', "empty logic tree")
    return tuple(children)


def _split_column(item: str) -> tuple[str, str, str]:
    """Split ``"a.b".eq.1`` or ``col.eq.1`` at the dot after the column."""
    if item.startswith('"'):
        end = item.find('"', 1)
        while end > 0 and item[end - 1] == "\\":
            end = item.find('"', end + 1)
        if end > 0:
            column, rest = item[: end + 1], item[end + 1 :]
            tail_column, dot, rest = rest.partition(".")
            return column + tail_column, dot, rest
    return item.partition(".")


def parse_select(raw: str | None) -> list[SelectItem | EmbedItem]:
    """Parse ``select=``: ``*``, ``col``, ``alias:col``, ``col::type``, ``col->a->>b`` and
    embedded resources ``alias:rel!hint!inner(...)``. Spreads and aggregates are refused with
    a 400 rather than misread."""
    if raw is None or raw.strip() in {"", "*"}:
        return [SelectItem("*")]
    return list(_parse_select_items(raw, raw))


def _parse_select_items(text: str, raw: str) -> tuple[SelectItem | EmbedItem, ...]:
    items: list[SelectItem | EmbedItem] = []
    for part in _split_top_level(text, raw):
        part = part.strip()
        if not part:
            raise QueryError(f'"failed to parse select parameter ({raw})"', "empty select item")
        if part.startswith("..."):
            raise _unsupported_select(
                raw, "spread embedding (...rel) is not supported by localbase"
            )
        alias = None
        match = re.match(r'^("(?:[^"\\]|\\.)*"|[^:"()]+):(?!:)', part)
        if match:
            alias = _identifier(_unquote(match[1]))
            part = part[match.end() :].strip()
        if "(" in part:
            items.append(_parse_embed(part, alias, raw))
            continue
        cast = None
        if "::" in part:
            part, _, cast = part.rpartition("::")
            if not _CAST.match(cast):
                raise QueryError(
                    f'"failed to parse select parameter ({raw})"', f"invalid cast type {cast!r}"
                )
        if part == "*":
            if alias or cast:
                raise QueryError(f'"failed to parse select parameter ({raw})"', "bad use of *")
            items.append(SelectItem("*"))
            continue
        column, path = parse_field(part)
        items.append(SelectItem(column, alias, path, cast))
    return tuple(items)


def _parse_embed(part: str, alias: str | None, raw: str) -> EmbedItem:
    opening = part.index("(")
    if not part.endswith(")"):
        raise QueryError(f'"failed to parse select parameter ({raw})"', f"bad item {part!r}")
    head, inner = part[:opening].strip(), part[opening + 1 : -1]
    if "." in head or not inner.strip():
        raise _unsupported_select(
            raw, "aggregate functions and empty embedded selects are not supported by localbase"
        )
    names = head.split("!")
    relation = _identifier(_unquote(names[0]))
    hint, inner_join = None, False
    for modifier in names[1:]:
        if modifier == "inner":
            inner_join = True
        elif modifier == "left":
            inner_join = False
        elif hint is None and modifier:
            hint = _identifier(modifier)
        else:
            raise QueryError(f'"failed to parse select parameter ({raw})"', f"bad hint in {head!r}")
    return EmbedItem(relation, _parse_select_items(inner, raw), alias, hint, inner_join)


def _unsupported_select(raw: str, details: str) -> QueryError:
    return QueryError(f'"failed to parse select parameter ({raw})"', details)


def parse_order(raw: str) -> list[OrderTerm]:
    """Parse ``order=a.desc.nullslast,b->c``."""
    terms = []
    for part in _split_top_level(raw, raw):
        if "(" in part:
            raise QueryError(
                f'"failed to parse order ({raw})"',
                "ordering by embedded resources is not supported by localbase",
            )
        column_text, dot, modifiers = _split_column(part)
        column, path = parse_field(column_text)
        descending, nulls = False, None
        for modifier in modifiers.split(".") if dot else []:
            if modifier in {"asc", "desc"}:
                descending = modifier == "desc"
            elif modifier in {"nullsfirst", "nullslast"}:
                nulls = modifier[5:]
            else:
                raise QueryError(
                    f'"failed to parse order ({raw})"', f"unexpected modifier {modifier!r}"
                )
        terms.append(OrderTerm(column, descending, nulls, path))
    return terms


def parse_columns(raw: str) -> list[str]:
    """Parse ``columns="a","b"`` (quoted or bare names)."""
    return [_identifier(_unquote(part.strip())) for part in _split_top_level(raw, raw)]


# Row positions are bigints in SQL; larger numbers mean "beyond every row" all the same.
MAX_ROW_POSITION = 2**63 - 1


def parse_non_negative_int(name: str, raw: str) -> int:
    try:
        value = min(int(raw), MAX_ROW_POSITION)
    except ValueError:
        value = -1
    if value < 0:
        raise QueryError(f'"failed to parse {name} parameter ({raw})"', "expected an integer >= 0")
    return value


def parse_range_header(value: str | None) -> tuple[int, int | None] | None:
    """``Range: 0-9`` (or ``items=0-9``, ``5-``) as ``(offset, limit or None)``.

    A header that is not a range is ignored, as PostgREST does; a range whose lower bound is
    above its upper bound raises :class:`RangeError`.
    """
    if not value:
        return None
    match = re.fullmatch(r"\s*(?:items=)?(\d+)-(\d*)\s*", value)
    if match is None:
        return None
    lower = min(int(match[1]), MAX_ROW_POSITION)
    if not match[2]:
        return lower, None
    upper = min(int(match[2]), MAX_ROW_POSITION)
    if lower > upper:
        raise RangeError(
            "The lower boundary must be lower than or equal to the upper boundary in the Range"
            " header."
        )
    return lower, upper - lower + 1


class RangeError(Exception):
    """An unsatisfiable ``Range`` header (416 ``PGRST103``)."""


def parse_prefer(values: list[str]) -> Preferences:
    """Parse ``Prefer`` headers; unknown preferences are ignored unless ``handling=strict``."""
    prefs = Preferences()
    for header in values:
        for item in header.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if name == "return" and value in {"representation", "minimal", "headers-only"}:
                prefs.return_ = value
            elif name == "count" and value in {"exact", "planned", "estimated"}:
                prefs.count = value
            elif name == "missing" and value == "default":
                prefs.missing_default = True
            elif name == "missing" and value == "null":
                pass
            elif name == "resolution" and value in {"merge-duplicates", "ignore-duplicates"}:
                prefs.resolution = value
            elif name == "handling" and value in {"strict", "lenient"}:
                prefs.strict = value == "strict"
            elif name == "max-affected" and value.isdigit():
                prefs.max_affected = int(value)
            elif name == "timezone" and value:
                prefs.timezone = value
            else:
                prefs.invalid.append(item)
                continue
            prefs.applied.append(f"{name}={value}")
    return prefs


def _parse_in_list(value: str, raw: str) -> tuple[str, ...]:
    if not (value.startswith("(") and value.endswith(")")):
        raise QueryError(f'"failed to parse filter ({raw})"', "in expects a list like (a,b)")
    inner = value[1:-1]
    if not inner:
        return ()
    return tuple(_unquote(item) for item in _split_top_level(inner, raw))


def _split_top_level(text: str, raw: str) -> list[str]:
    """Split on commas outside parentheses and double quotes (``\\`` escapes in quotes)."""
    parts, current, depth, quoted, escaped = [], [], 0, False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if quoted and char == "\\":
            current.append(char)
            escaped = True
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                raise QueryError(f'"failed to parse ({raw})"', "unbalanced parentheses")
        elif not quoted and depth == 0 and char == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted or depth != 0:
        raise QueryError(f'"failed to parse ({raw})"', "unbalanced quotes or parentheses")
    parts.append("".join(current))
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        inner = text[1:-1]
        out, escaped = [], False
        for char in inner:
            if escaped:
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            else:
                out.append(char)
        return "".join(out)
    return text


def _identifier(name: str) -> str:
    name = name.strip()
    if not name or "\x00" in name:
        raise QueryError(f"invalid identifier {name!r}")
    return name
