"""PostgREST's query string grammar (protocol doc §3.2), parsed without touching SQL.

Everything here turns request text into small frozen values; :mod:`localbase.rest.sql` turns
those into SQL with quoted identifiers and bound values. Parse errors are
:class:`QueryError`, which the service answers with 400 ``PGRST100``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPERATORS = frozenset(
    {"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in", "is",
     "isdistinct", "cs", "cd", "ov"}
)  # fmt: skip
IS_VALUES = frozenset({"null", "not_null", "true", "false", "unknown"})
RESERVED_PARAMS = frozenset(
    {"select", "columns", "on_conflict", "order", "limit", "offset", "and", "or", "not.and",
     "not.or", "apikey"}
)  # fmt: skip


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


@dataclass(frozen=True)
class LogicTree:
    operator: str  # "and" | "or"
    children: tuple[Filter | LogicTree, ...]
    negated: bool = False


@dataclass(frozen=True)
class SelectItem:
    column: str  # "*" for all columns
    alias: str | None = None


@dataclass(frozen=True)
class OrderTerm:
    column: str
    descending: bool = False
    nulls: str | None = None  # "first" | "last" | None


@dataclass
class Preferences:
    return_: str | None = None  # "representation" | "minimal" | "headers-only"
    count: str | None = None  # "exact" | "planned" | "estimated"
    missing_default: bool = False
    resolution: str | None = None  # "merge-duplicates" | "ignore-duplicates"
    applied: list[str] = field(default_factory=list)


def parse_filter(column: str, raw: str) -> Filter:
    """Parse ``<column>=[not.]<op>.<value>`` (the query string form)."""
    column = _identifier(column)
    negated = False
    text = raw
    if text.startswith("not."):
        negated, text = True, text[4:]
    operator, dot, value = text.partition(".")
    if not dot or operator not in OPERATORS:
        raise QueryError(
            f'"failed to parse filter ({raw})" (line 1, column 1)',
            f"unknown or missing operator {operator!r}; expected one of "
            + ", ".join(sorted(OPERATORS)),
        )
    if operator == "in":
        return Filter(column, operator, _parse_in_list(value, raw), negated)
    if operator == "is":
        if value.lower() not in IS_VALUES:
            raise QueryError(
                f'"failed to parse filter ({raw})"',
                "is expects null, not_null, true, false or unknown",
            )
        return Filter(column, operator, value.lower(), negated)
    return Filter(column, operator, value, negated)


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
            column, dot, rest = item.partition(".")
            if not dot:
                raise QueryError(f'"failed to parse logic tree ({raw})"', f"bad filter {item!r}")
            children.append(parse_filter(_unquote(column), rest))
    if not children:
        raise QueryError(f'"failed to parse logic tree ({raw})"', "empty logic tree")
    return tuple(children)


def parse_select(raw: str | None) -> list[SelectItem]:
    """Parse ``select=``: ``*``, ``col``, ``alias:col`` (casts, JSON paths and embedding
    are not supported and answer 400 instead of a wrong result)."""
    if raw is None or raw.strip() in {"", "*"}:
        return [SelectItem("*")]
    items = []
    for part in _split_top_level(raw, raw):
        part = part.strip()
        if "(" in part or "->" in part or "::" in part:
            raise QueryError(
                f'"failed to parse select parameter ({raw})"',
                "embedded resources, casts and JSON paths are not supported by localbase",
            )
        alias = None
        if ":" in part and not part.startswith('"'):
            alias, _, part = part.partition(":")
            alias = _identifier(alias)
        column = "*" if part == "*" else _identifier(_unquote(part))
        items.append(SelectItem(column, alias))
    return items


def parse_order(raw: str) -> list[OrderTerm]:
    """Parse ``order=a.desc.nullslast,b``."""
    terms = []
    for part in _split_top_level(raw, raw):
        pieces = part.split(".")
        column = _identifier(_unquote(pieces[0]))
        descending, nulls = False, None
        for modifier in pieces[1:]:
            if modifier in {"asc", "desc"}:
                descending = modifier == "desc"
            elif modifier in {"nullsfirst", "nullslast"}:
                nulls = modifier[5:]
            else:
                raise QueryError(
                    f'"failed to parse order ({raw})"', f"unexpected modifier {modifier!r}"
                )
        terms.append(OrderTerm(column, descending, nulls))
    return terms


def parse_columns(raw: str) -> list[str]:
    """Parse ``columns="a","b"`` (quoted or bare names)."""
    return [_identifier(_unquote(part.strip())) for part in _split_top_level(raw, raw)]


def parse_non_negative_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise QueryError(f'"failed to parse {name} parameter ({raw})"', "expected an integer >= 0")
    return value


def parse_prefer(values: list[str]) -> Preferences:
    """Parse ``Prefer`` headers; unknown preferences are ignored, as PostgREST does by default."""
    prefs = Preferences()
    for header in values:
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            name, value = name.strip(), value.strip()
            if name == "return" and value in {"representation", "minimal", "headers-only"}:
                prefs.return_ = value
            elif name == "count" and value in {"exact", "planned", "estimated"}:
                prefs.count = value
            elif name == "missing" and value == "default":
                prefs.missing_default = True
            elif name == "resolution" and value in {"merge-duplicates", "ignore-duplicates"}:
                prefs.resolution = value
            else:
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
