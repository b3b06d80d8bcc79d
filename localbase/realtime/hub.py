"""Fan-out of decoded transactions to the channels whose bindings match.

The hub holds the live subscriptions. For a batch of committed transactions (one, or the
backlog when changes arrive faster than they are sent), it finds the matching bindings of every
channel (table, event, filters), asks the visibility checker which channels may see each row
(RLS: one statement per table per batch covers every key and every distinct claims set), and
pushes one ``postgres_changes`` frame per change per channel, listing all matching binding ids
(protocol doc §4.7-4.9). Frames go to each socket's send queue in commit order.

Rows whose WAL text is over :data:`MAX_RECORD_BYTES` are sent as upstream does: values of at
most 64 bytes only, and ``errors: ["Error 413: Payload Too Large"]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from localbase.realtime.filters import matches
from localbase.realtime.index import BindingIndex
from localbase.realtime.pgoutput import UNCHANGED, Relation, RowChange, Transaction, Tuple
from localbase.realtime.pgtypes import TypeRegistry
from localbase.realtime.protocol import Channel

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1_048_576  # upstream poll_max_record_bytes
MAX_OVERSIZED_VALUE_BYTES = 64
PAYLOAD_TOO_LARGE = "Error 413: Payload Too Large"


class Sink(Protocol):
    """Where a channel's frames go: the owning socket's send queue."""

    def push(self, text: str) -> None: ...


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What fan-out needs to know about a published table beyond its Relation message."""

    rls_enabled: bool
    key_types: dict[str, str]  # primary-key column -> SQL type for the visibility query


class Visibility(Protocol):
    """Decides which claims may see a row; see :class:`localbase.realtime.service`."""

    async def table_info(self, relation: Relation) -> TableInfo: ...

    async def selectable_columns(self, role: str, relation: Relation) -> frozenset[str]: ...

    async def visible(
        self,
        relation: Relation,
        info: TableInfo,
        keys: list[dict[str, str]],
        claims: list[dict[str, Any]],
    ) -> list[set[int]]: ...


@dataclass(eq=False, slots=True)
class _Live:
    channel: Channel
    sink: Sink
    seq: int = 0  # when it was added: matches come out in this order, as they always did
    wild_schemas: frozenset[str] = frozenset()  # schemas it watches with table "*" / None


@dataclass(eq=False, slots=True)
class _Work:
    """One change of a batch, the channels it matched and, once checked, who may see it."""

    change: RowChange
    matched: list[tuple[_Live, list[int]]]
    stamp: str
    info: TableInfo | None = None
    allowed: list[bool] | None = None


def commit_timestamp(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC, the real service's format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Hub:
    """Live subscriptions and the fan-out of changes to them."""

    def __init__(self, types: TypeRegistry, visibility: Visibility) -> None:
        self.types = types
        self.visibility = visibility
        self._live: dict[Channel, _Live] = {}
        self._index = BindingIndex(types.to_python)
        self._added = 0
        self.delivered = 0  # frames pushed, for the bench and the logs

    def __len__(self) -> int:
        return len(self._live)

    def add(self, channel: Channel, sink: Sink) -> None:
        """Make a channel's bindings live: every change decoded after this call is matched."""
        self.remove(channel)
        self._added += 1
        wild = frozenset(b.schema or "public" for b in channel.bindings if b.table in (None, "*"))
        live = _Live(channel, sink, self._added, wild)
        self._live[channel] = live
        self._index.add(live, channel.bindings)

    def remove(self, channel: Channel) -> None:
        """Stop matching a channel; no-op when it is not live."""
        live = self._live.pop(channel, None)
        if live is not None:
            self._index.remove(live)

    async def dispatch(self, transactions: list[Transaction]) -> None:
        """Deliver committed transactions; returns once every frame is queued.

        Visibility is checked for the whole batch first (concurrently per table), then
        frames are pushed in WAL order, so each socket still sees commit order.
        """
        work: list[_Work] = []
        for transaction in transactions:
            stamp = commit_timestamp(transaction.commit_time)
            for change in transaction.changes:
                if matched := self._matching(change):
                    work.append(_Work(change, matched, stamp))
        if not work:
            return
        by_table: dict[int, list[_Work]] = {}
        for item in work:
            by_table.setdefault(item.change.relation.id, []).append(item)
        results = await asyncio.gather(
            *(self._check_table(items) for items in by_table.values()), return_exceptions=True
        )
        for items, result in zip(by_table.values(), results, strict=True):
            if isinstance(result, BaseException):
                relation = items[0].change.relation
                log.error(
                    "dropping %d changes on %s.%s: visibility check failed: %s",
                    len(items),
                    relation.schema,
                    relation.name,
                    result,
                )
                for item in items:
                    item.allowed = [False] * len(item.matched)
        for item in work:
            if item.info is None or item.allowed is None:
                continue
            try:
                await self._push(item.change, item.matched, item.info, item.allowed, item.stamp)
            except Exception:
                log.exception(
                    "dropping %s on %s.%s after an error",
                    item.change.kind.lower(),
                    item.change.relation.schema,
                    item.change.relation.name,
                )

    async def _check_table(self, items: list[_Work]) -> None:
        """RLS for every change of one table in the batch: one query for all keys and claims."""
        info = await self.visibility.table_info(items[0].change.relation)
        keys: list[dict[str, str]] = []
        claims: dict[str, dict[str, Any]] = {}
        # Each subscriber's claims are read once, before the query: a token refreshed while
        # it runs must not leave a subscriber without a verdict.
        probes: list[tuple[_Work, int, list[str | None]]] = []
        for item in items:
            item.info = item.info or info
            if item.change.kind == "DELETE" or not info.rls_enabled:
                item.allowed = [True] * len(item.matched)
                continue
            key = _key_values(item.change, info)
            if key is None:  # no primary key: the real service sends an error variant
                item.allowed = [False] * len(item.matched)
                continue
            subscriber_keys: list[str | None] = []
            for live, _ in item.matched:
                if live.channel.claims.get("role") == "service_role":
                    subscriber_keys.append(None)
                    continue
                claims_key = _claims_key(live.channel.claims)
                claims.setdefault(claims_key, live.channel.claims)
                subscriber_keys.append(claims_key)
            probes.append((item, len(keys), subscriber_keys))
            keys.append(key)
        if not probes:
            return
        names = list(claims)
        seen = await self.visibility.visible(
            items[0].change.relation, info, keys, list(claims.values())
        )
        verdict = dict(zip(names, seen, strict=True))
        for item, position, subscriber_keys in probes:
            item.allowed = [
                claims_key is None or position in verdict[claims_key]
                for claims_key in subscriber_keys
            ]

    def _matching(self, change: RowChange) -> list[tuple[_Live, list[int]]]:
        """Live channels with at least one binding this change matches, and those ids.

        Channels come in the order the per-table scan always gave (those watching every
        table of the schema first, then by when they were added), ids in binding order.
        """
        relation = change.relation
        if not self._index.watches(relation.schema, relation.name, change.kind):
            return []
        values = self._filter_values(change)
        coerce = self.types.to_python
        hits: dict[_Live, list[int]] = {}
        candidates = self._index.candidates(relation.schema, relation.name, change.kind, values)
        for (owner, position), binding in candidates:
            if matches(binding.conditions, values, coerce):
                hits.setdefault(owner, []).append(position)  # type: ignore[arg-type]
        schema = relation.schema
        order = sorted(hits, key=lambda live: (schema not in live.wild_schemas, live.seq))
        return [(live, [live.channel.bindings[p].id for p in sorted(hits[live])]) for live in order]

    async def _push(
        self,
        change: RowChange,
        matched: list[tuple[_Live, list[int]]],
        info: TableInfo,
        allowed: list[bool],
        stamp: str,
    ) -> None:
        payloads: dict[tuple[str, frozenset[str] | None], str] = {}
        for (live, ids), ok in zip(matched, allowed, strict=True):
            if not ok or live.channel.closed:
                continue
            data = await self._data_json(change, info, live.channel, ids, stamp, payloads)
            live.sink.push(_frame(live.channel.topic, ids, data))
            self.delivered += 1

    @staticmethod
    def _filter_values(change: RowChange) -> dict[str, tuple[str | None, int]]:
        """Column -> (text, type oid) that filters see: the new row, or a DELETE's old row."""
        relation = change.relation
        values: dict[str, tuple[str | None, int]] = {}
        old = _row(relation, change.old, key_only=change.old_is_key_only)
        new = _row(relation, change.new, key_only=False) if change.new is not None else None
        for column in relation.columns:
            source = new if new is not None else old
            if column.name in source:
                values[column.name] = (source[column.name], column.type_oid)
            elif column.name in old:
                values[column.name] = (old[column.name], column.type_oid)
        return values

    async def _data_json(
        self,
        change: RowChange,
        info: TableInfo,
        channel: Channel,
        ids: list[int],
        stamp: str,
        cache: dict[tuple[str, frozenset[str] | None], str],
    ) -> str:
        role = str(channel.claims.get("role", "anon"))
        selects = [b.select for b in channel.bindings if b.id in ids]
        wanted = (
            None if any(s is None for s in selects) else frozenset(c for s in selects for c in s)
        )
        key = (role, wanted)
        if key not in cache:
            columns = await self.visibility.selectable_columns(role, change.relation)
            if wanted is not None:
                columns = columns & (wanted | set(info.key_types))
            cache[key] = json.dumps(self._data(change, info, columns, stamp), separators=(",", ":"))
        return cache[key]

    def _data(
        self, change: RowChange, info: TableInfo, visible: Iterable[str], stamp: str
    ) -> dict[str, Any]:
        relation = change.relation
        visible = set(visible)
        columns = [c for c in relation.columns if c.name in visible]
        data: dict[str, Any] = {
            "schema": relation.schema,
            "table": relation.name,
            "commit_timestamp": stamp,
            "type": change.kind,
            "columns": [{"name": c.name, "type": self.types.name(c.type_oid)} for c in columns],
        }
        keys = set(info.key_types)  # the primary key (pgoutput flags every column under FULL)
        old = _row(relation, change.old, key_only=change.old_is_key_only)
        if change.new is not None:
            new = _row(relation, change.new, key_only=False)
            data["record"] = self._json(relation, {**_unchanged_from(old, change), **new}, visible)
        if change.kind == "UPDATE":
            if change.old is None:  # default identity: the key, taken from the new row
                new_row = _row(relation, change.new, key_only=False)
                old = {k: v for k, v in new_row.items() if k in keys}
            data["old_record"] = self._json(relation, old, visible)
        elif change.kind == "DELETE":
            if info.rls_enabled:
                old = {k: v for k, v in old.items() if k in keys}
            data["old_record"] = self._json(relation, old, visible)
        data["errors"] = None
        if _wal_size(change) > MAX_RECORD_BYTES:
            for name in ("record", "old_record"):
                if name in data:
                    data[name] = {k: v for k, v in data[name].items() if _small(v)}
            data["errors"] = [PAYLOAD_TOO_LARGE]
        return data

    def _json(self, relation: Relation, row: dict[str, str | None], visible: set[str]) -> dict:
        return {
            c.name: self.types.to_json(row[c.name], c.type_oid)
            for c in relation.columns
            if c.name in row and c.name in visible
        }


def _wal_size(change: RowChange) -> int:
    """Bytes of column text in the change, the measure upstream compares to the limit."""
    return sum(
        len(value)
        for values in (change.new, change.old)
        if values is not None
        for value in values
        if isinstance(value, str)
    )


def _small(value: Any) -> bool:
    return len(json.dumps(value, separators=(",", ":")).encode()) <= MAX_OVERSIZED_VALUE_BYTES


def _row(relation: Relation, values: Tuple | None, *, key_only: bool) -> dict[str, str | None]:
    """Column name -> text for the columns the tuple really carries."""
    if values is None:
        return {}
    row = {}
    for column, value in zip(relation.columns, values, strict=False):
        if value is UNCHANGED or (key_only and not column.is_key):
            continue
        row[column.name] = value  # type: ignore[assignment]
    return row


def _unchanged_from(old: dict[str, str | None], change: RowChange) -> dict[str, str | None]:
    """Unchanged TOASTed columns of an UPDATE, filled from a full old row when there is one."""
    if change.new is None or change.old_is_key_only:
        return {}
    return {
        c.name: old[c.name]
        for c, v in zip(change.relation.columns, change.new, strict=False)
        if v is UNCHANGED and c.name in old
    }


def _key_values(change: RowChange, info: TableInfo) -> dict[str, str] | None:
    keys = set(info.key_types)
    if not keys:
        return None
    row = _row(change.relation, change.new, key_only=False)
    result = {k: row[k] for k in keys if row.get(k) is not None}
    return result if len(result) == len(keys) else None


def _claims_key(claims: dict[str, Any]) -> str:
    return json.dumps(claims, sort_keys=True, default=str)


def _frame(topic: str, ids: list[int], data_json: str) -> str:
    return (
        f'{{"topic":{json.dumps(topic)},"event":"postgres_changes",'
        f'"payload":{{"ids":{json.dumps(ids)},"data":{data_json}}},"ref":null}}'
    )
