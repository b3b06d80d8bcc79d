"""postgres_changes filter strings: parsing and evaluation against a decoded row.

Grammar (protocol doc §4.8, upstream HEAD): ``column=op.value`` conditions joined by commas
(AND); commas inside ``(...)`` or double quotes do not split. Operators: eq, neq, lt, lte, gt,
gte, in (``in.(a,b)``), is (``null``/``true``/``false``/``unknown``), isdistinct, like, ilike,
match and imatch (POSIX regular expressions, ``~`` and ``~*``), each optionally prefixed by
``not.``. Values are taken verbatim (no URL decoding); a value in
double quotes may escape with ``\\``.

Evaluation follows SQL: both sides are compared as the column's type, a NULL column value makes
every comparison unknown (so the row does not pass), and ``not.`` of unknown stays unknown.
Text ordering (lt/gt on text) compares code points, not the database collation. Regular
expressions run on Python's ``re`` after translating the POSIX classes (``[[:digit:]]``) and
word anchors (``\\m``, ``\\M``, ``\\y``) that PostgreSQL adds; the service also validates each
pattern with PostgreSQL when the binding is subscribed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import regex

log = logging.getLogger(__name__)

OPERATORS: Final = frozenset(
    {
        "eq", "neq", "lt", "lte", "gt", "gte", "in", "is", "isdistinct",
        "like", "ilike", "match", "imatch",
    }
)  # fmt: skip
PATTERN_OPERATORS: Final = frozenset({"like", "ilike", "match", "imatch"})
IS_VALUES: Final = frozenset({"null", "true", "false", "unknown"})
MAX_IN_VALUES: Final = 100
MATCH_TIMEOUT: Final = 0.02  # seconds one match/imatch evaluation may take

# (column value text, column type oid) -> comparable value; raises ValueError when the text is
# not a value of that type. TypeRegistry.to_python has this signature.
Coerce = Callable[[str, int], Any]


class FilterError(ValueError):
    """The filter string does not parse; the message is the real service's text."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``column=op.value`` condition."""

    column: str
    operator: str
    value: str | tuple[str, ...]
    negated: bool = False
    _typed: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)

    def describe(self) -> str:
        """Elixir-style tuple the real service prints in subscription errors."""
        value = self.value
        if isinstance(value, tuple):
            value = "{" + ",".join(value) + "}"
        negated = "true" if self.negated else "false"
        return f'{{"{self.column}", "{self.operator}", "{value}", {negated}}}'

    def evaluate(self, text: str | None, type_oid: int, coerce: Coerce) -> bool | None:
        """Three-valued result of this condition for one column value (None = unknown)."""
        result = self._evaluate(text, type_oid, coerce)
        if self.negated and result is not None:
            return not result
        return result

    def _evaluate(self, text: str | None, type_oid: int, coerce: Coerce) -> bool | None:
        if self.operator == "is":
            return self._is(text, type_oid, coerce)
        try:
            actual = None if text is None else coerce(text, type_oid)
            expected = self._expected(type_oid, coerce)
        except ValueError:
            return False
        if self.operator == "isdistinct":
            return actual != expected
        if actual is None:
            return None
        if self.operator in ("like", "ilike"):
            return expected.matches(str(actual))
        if self.operator in ("match", "imatch"):
            return _search_bounded(expected, text)
        if self.operator == "in":
            return actual in expected
        try:
            return _COMPARE[self.operator](actual, expected)
        except (TypeError, ArithmeticError):  # e.g. a Decimal compared with NaN
            return False

    def _expected(self, type_oid: int, coerce: Coerce) -> Any:
        if type_oid not in self._typed:
            self._typed[type_oid] = self._convert(type_oid, coerce)
        return self._typed[type_oid]

    def _convert(self, type_oid: int, coerce: Coerce) -> Any:
        if self.operator in ("like", "ilike"):
            return LikePattern(str(self.value), ignore_case=self.operator == "ilike")
        if self.operator in ("match", "imatch"):
            return compile_posix(str(self.value), ignore_case=self.operator == "imatch")
        if isinstance(self.value, tuple):
            return tuple(coerce(v, type_oid) for v in self.value)
        return coerce(self.value, type_oid)

    def _is(self, text: str | None, type_oid: int, coerce: Coerce) -> bool:
        if self.value == "null":
            return text is None
        if self.value == "unknown":
            return text is None
        if text is None:
            return False
        try:
            return coerce(text, type_oid) is (self.value == "true")
        except ValueError:
            return False


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


_ANY_ONE: Final = object()
_ANY_RUN: Final = object()


class LikePattern:
    """A SQL LIKE pattern (``%``, ``_``, ``\\`` escape; ``*`` as ``%``), matched in O(n·m).

    A regex translation backtracks exponentially on patterns like ``%a%a%a%b`` against a
    long value, and a subscriber chooses the pattern: one change would stall every socket.
    """

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        self.ignore_case = ignore_case
        tokens: list[object] = []
        chars = iter(pattern.casefold() if ignore_case else pattern)
        for char in chars:
            if char == "\\":
                tokens.append(next(chars, "\\"))
            elif char in "%*":
                if not tokens or tokens[-1] is not _ANY_RUN:
                    tokens.append(_ANY_RUN)
            elif char == "_":
                tokens.append(_ANY_ONE)
            else:
                tokens.append(char)
        self.tokens = tokens

    def matches(self, text: str) -> bool:
        """Whether the whole of ``text`` matches, as ``text LIKE pattern`` would."""
        if self.ignore_case:
            text = text.casefold()
        tokens = self.tokens
        t = p = 0
        star = -1  # token index after the last % seen, and where its run started in text
        star_text = 0
        while t < len(text):
            if p < len(tokens) and tokens[p] is _ANY_RUN:
                star, star_text = p + 1, t
                p += 1
            elif p < len(tokens) and (tokens[p] is _ANY_ONE or tokens[p] == text[t]):
                t += 1
                p += 1
            elif star >= 0:
                star_text += 1
                t, p = star_text, star
            else:
                return False
        while p < len(tokens) and tokens[p] is _ANY_RUN:
            p += 1
        return p == len(tokens)


_POSIX_CLASSES: Final = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": "\\s",
    "xdigit": "0-9a-fA-F",
    "word": "\\w",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}
_POSIX_TOKEN: Final = re.compile(r"\[:(\w+):\]|\\[mMy]")


def _search_bounded(pattern: regex.Pattern[str], text: str) -> bool:
    """``text ~ pattern``, given up as "no match" after MATCH_TIMEOUT seconds.

    A subscriber writes the pattern; a catastrophically backtracking one must not hold the
    event loop (and every other socket) for longer than this.
    """
    try:
        return pattern.search(text, timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        log.warning("a match filter timed out after %.0f ms; treated as no match",
                    MATCH_TIMEOUT * 1000)  # fmt: skip
        return False


def compile_posix(pattern: str, *, ignore_case: bool = False) -> regex.Pattern[str]:
    """Compile a PostgreSQL (ARE) regular expression with the ``regex`` package.

    Raises:
        ValueError: the pattern is not a regular expression ``re`` understands.
    """

    def translate(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "\\m":
            return r"\b(?=\w)"
        if token == "\\M":
            return r"\b(?<=\w)"
        if token == "\\y":
            return r"\b"
        try:
            return _POSIX_CLASSES[match.group(1)]
        except KeyError:
            raise ValueError(f"invalid character class {token}") from None

    try:
        flags = regex.DOTALL | regex.VERSION0 | (regex.IGNORECASE if ignore_case else 0)
        return regex.compile(_POSIX_TOKEN.sub(translate, pattern), flags)
    except (re.error, regex.error) as exc:
        raise ValueError(f"invalid regular expression: {exc}") from exc


def parse_filter(text: str | None) -> tuple[Condition, ...]:
    """Parse a binding's filter string; empty or missing means no conditions.

    Raises:
        FilterError: with the real service's ``Error parsing `filter` params: ...`` text.
    """
    if text is None or not text.strip():
        return ()
    return tuple(_parse_condition(part) for part in _split(text, ","))


def _parse_condition(text: str) -> Condition:
    column, equals, rest = text.partition("=")
    if not equals or not column:
        raise FilterError(f"Error parsing `filter` params: {_elixir_list(text.split('='))}")
    negated = False
    if rest.startswith("not."):
        negated, rest = True, rest[4:]
    operator, dot, value = rest.partition(".")
    if not dot or operator not in OPERATORS:
        raise FilterError(f"Error parsing `filter` params: {_elixir_list(rest.split('.', 1))}")
    if operator == "in":
        return Condition(column.strip(), operator, _in_values(value), negated)
    if operator == "is" and value.lower() not in IS_VALUES:
        raise FilterError(
            "Error parsing `filter` params: `is` filter value must be one of "
            "null, true, false or unknown"
        )
    if operator == "is":
        value = value.lower()
    return Condition(column.strip(), operator, _unquote(value), negated)


def _in_values(value: str) -> tuple[str, ...]:
    if not (value.startswith("(") and value.endswith(")")):
        raise FilterError(
            "Error parsing `filter` params: `in` filter value must be wrapped by parentheses"
        )
    items = tuple(_unquote(v.strip()) for v in _split(value[1:-1], ","))
    if len(items) > MAX_IN_VALUES:
        raise FilterError(
            f"Error parsing `filter` params: `in` filter accepts at most {MAX_IN_VALUES} values"
        )
    return items


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside parentheses and double quotes."""
    parts, current, depth, quoted, escaped = [], [], 0, False, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == separator:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _elixir_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def matches(
    conditions: tuple[Condition, ...],
    values: Mapping[str, tuple[str | None, int]],
    coerce: Coerce,
) -> bool:
    """True when every condition holds for ``values`` (column -> (text, type oid)).

    A condition on a column missing from ``values`` (say a DELETE's key-only old row) fails.
    """
    for condition in conditions:
        if condition.column not in values:
            return False
        text, type_oid = values[condition.column]
        if condition.evaluate(text, type_oid, coerce) is not True:
            return False
    return True
