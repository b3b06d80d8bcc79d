"""Sub-linear lookup of the bindings a row change may match.

Bindings are grouped by (schema, table, event), with ``None`` for a wildcard table. Within a
group, a binding whose filter has a plain ``eq`` condition is also indexed by that condition's
column and *canonical value*: the Python value :meth:`TypeRegistry.to_python` gives for the
column's type, exactly what :class:`~localbase.realtime.filters.Condition` compares with ``==``.
These typed tables are built lazily per (column, type oid) and kept up to date on add/remove.

:meth:`BindingIndex.candidates` only prunes: it returns a superset of the bindings that can
match, and the caller still evaluates every condition. Whenever a value is not a plain hashable
type whose ``==`` agrees with its hash (lists, NaN, an unexpected coercion error), the lookup
falls back to every binding of the column, so results never differ from brute force.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from localbase.realtime.filters import Condition
from localbase.realtime.protocol import Binding

log = logging.getLogger(__name__)

Coerce = Callable[[str, int], Any]
GroupKey = tuple[str, str | None, str]  # schema, table (None = every table), event
# (owner, position of the binding in its channel); owner is any identity-hashed object
EntryKey = tuple[object, int]

_PLAIN_TYPES: Final = frozenset({str, int, bool, uuid.UUID, date, datetime})
_LOOSE: Final = object()


def canonical(value: Any) -> Any:
    """``value`` when it is safe as a dict key standing for ``==``; otherwise ``_LOOSE``."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is float:
        return value if not math.isnan(value) else _LOOSE
    if kind is Decimal:
        return value if value.is_finite() else _LOOSE
    return _LOOSE


def index_condition(binding: Binding) -> Condition | None:
    """The first plain (not negated) ``eq`` condition of a binding, the one it is indexed by."""
    for condition in binding.conditions:
        if (
            condition.operator == "eq"
            and not condition.negated
            and isinstance(condition.value, str)
        ):
            return condition
    return None


@dataclass(slots=True)
class _Typed:
    """Bindings of one column keyed by their eq value as seen through one type oid."""

    by_value: dict[Any, dict[EntryKey, Binding]] = field(default_factory=dict)
    loose: dict[EntryKey, Binding] = field(default_factory=dict)  # no safe key: always tried
    keys: dict[EntryKey, Any] = field(default_factory=dict)  # entry -> its key, for removal

    def insert(self, entry: EntryKey, binding: Binding, condition: Condition, oid: int,
               coerce: Coerce) -> None:  # fmt: skip
        try:
            key = canonical(coerce(str(condition.value), oid))
        except Exception:  # evaluation decides; here it only means "try it"
            key = _LOOSE
        self.keys[entry] = key
        if key is _LOOSE:
            self.loose[entry] = binding
        else:
            self.by_value.setdefault(key, {})[entry] = binding

    def delete(self, entry: EntryKey) -> None:
        key = self.keys.pop(entry, _LOOSE)
        if key is _LOOSE:
            self.loose.pop(entry, None)
            return
        bucket = self.by_value.get(key)
        if bucket is not None:
            bucket.pop(entry, None)
            if not bucket:
                del self.by_value[key]


@dataclass(slots=True)
class _Group:
    """Bindings of one (schema, table, event)."""

    plain: dict[EntryKey, Binding] = field(default_factory=dict)
    keyed: dict[str, dict[EntryKey, tuple[Binding, Condition]]] = field(default_factory=dict)
    typed: dict[tuple[str, int], _Typed] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.plain or self.keyed)


class BindingIndex:
    """Bindings of live channels, looked up by a change's table, event and column values."""

    def __init__(self, coerce: Coerce) -> None:
        self.coerce = coerce
        self._groups: dict[GroupKey, _Group] = {}
        self._owned: dict[object, list[tuple[GroupKey, EntryKey]]] = {}

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._owned.values())

    def add(self, owner: object, bindings: Iterable[Binding]) -> None:
        """Index an owner's bindings (replacing any it had)."""
        self.remove(owner)
        owned = self._owned.setdefault(owner, [])
        for position, binding in enumerate(bindings):
            table = None if binding.table in (None, "*") else binding.table
            group_key = (binding.schema or "public", table, binding.event)
            group = self._groups.setdefault(group_key, _Group())
            entry = (owner, position)
            owned.append((group_key, entry))
            condition = index_condition(binding)
            if condition is None:
                group.plain[entry] = binding
                continue
            group.keyed.setdefault(condition.column, {})[entry] = (binding, condition)
            for (column, oid), typed in group.typed.items():
                if column == condition.column:
                    typed.insert(entry, binding, condition, oid, self.coerce)

    def remove(self, owner: object) -> None:
        """Forget an owner's bindings; no-op when it has none."""
        for group_key, entry in self._owned.pop(owner, ()):
            group = self._groups.get(group_key)
            if group is None:
                continue
            if group.plain.pop(entry, None) is None:
                for column, entries in list(group.keyed.items()):
                    if entries.pop(entry, None) is not None:
                        for (typed_column, _), typed in group.typed.items():
                            if typed_column == column:
                                typed.delete(entry)
                        if not entries:
                            del group.keyed[column]
                            for key in [k for k in group.typed if k[0] == column]:
                                del group.typed[key]
                        break
            if not group:
                del self._groups[group_key]

    def watches(self, schema: str, table: str, event: str) -> bool:
        """Whether any binding could match a change of this table and event."""
        groups = self._groups
        return any(key in groups for key in _group_keys(schema, table, event))

    def candidates(
        self,
        schema: str,
        table: str,
        event: str,
        values: Mapping[str, tuple[str | None, int]],
    ) -> list[tuple[EntryKey, Binding]]:
        """A superset of the (entry, binding) pairs whose table, event and filter may match.

        ``values`` maps column -> (text, type oid) as the filters see the row.
        """
        found: list[tuple[EntryKey, Binding]] = []
        for key in _group_keys(schema, table, event):
            group = self._groups.get(key)
            if group is not None:
                found.extend(group.plain.items())
                for column, entries in group.keyed.items():
                    found.extend(self._column_candidates(group, column, entries, values))
        return found

    def _column_candidates(
        self,
        group: _Group,
        column: str,
        entries: dict[EntryKey, tuple[Binding, Condition]],
        values: Mapping[str, tuple[str | None, int]],
    ) -> Iterable[tuple[EntryKey, Binding]]:
        if column not in values:
            return ()  # a condition on a column the row does not carry fails
        text, oid = values[column]
        if text is None:
            return ()  # eq with NULL is unknown: never a match
        typed = group.typed.get((column, oid))
        if typed is None:
            typed = group.typed[(column, oid)] = _Typed()
            for entry, (binding, condition) in entries.items():
                typed.insert(entry, binding, condition, oid, self.coerce)
        try:
            key = canonical(self.coerce(text, oid))
        except ValueError:
            return typed.loose.items()  # the row's value is not of the type: eq fails
        except Exception:  # let evaluation meet the same error
            key = _LOOSE
        if key is _LOOSE:
            return ((entry, pair[0]) for entry, pair in entries.items())
        bucket = typed.by_value.get(key)
        if bucket is None:
            return typed.loose.items()
        return [*bucket.items(), *typed.loose.items()]


def _group_keys(schema: str, table: str, event: str) -> tuple[GroupKey, ...]:
    return (schema, None, event), (schema, None, "*"), (schema, table, event), (schema, table, "*")
