"""RealtimeService: replication, the hub, subscription checks and the socket registry.

One instance per stack. :meth:`start` loads the type catalogue and starts the replication
stream (so every later commit is captured), :meth:`websocket_endpoint` serves one socket
(see :mod:`localbase.realtime.gateway`), and the effects the channel protocol returns land
here: joins and leaves, subscription checks, broadcast fan-out.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import asyncpg
from starlette.websockets import WebSocket

from localbase.database import Database, InvalidRole
from localbase.keys import ProjectKeys
from localbase.realtime.filters import compile_posix
from localbase.realtime.hub import Hub, Sink
from localbase.realtime.pgoutput import Transaction
from localbase.realtime.pgtypes import CATALOG_QUERY, TypeRegistry
from localbase.realtime.presence import PresenceRegistry
from localbase.realtime.protocol import Binding, Channel, Frame, system_frame
from localbase.realtime.replication import ReplicationStream
from localbase.realtime.visibility import Visibility

log = logging.getLogger(__name__)

SUBSCRIBED = "Subscribed to PostgreSQL"
MAX_BATCH = 100  # transactions dispatched together when a backlog has built up

_PUBLISHED = """
select 1 from pg_catalog.pg_publication_tables
where pubname = $1 and schemaname = $2 and ($3::text is null or tablename = $3) limit 1
"""
_COLUMNS = """
select a.attname::text, format_type(a.atttypid, a.atttypmod),
       has_column_privilege($3, a.attrelid, a.attnum, 'SELECT')
from pg_catalog.pg_attribute a
where a.attrelid = format('%I.%I', $1::text, $2::text)::regclass and a.attnum > 0
  and not a.attisdropped
"""


class SubscriptionError(Exception):
    """A binding that cannot be made live; the message is the real service's text."""


class RealtimeService:
    """The ``/realtime/v1/websocket`` service of one stack.

    Args:
        database: pool used for catalogue reads, subscription checks and RLS checks.
        keys: the project's keys (socket ``apikey`` and channel tokens are checked with them).
        replication_dsn: libpq DSN of a REPLICATION role (the embedded superuser).
        publication: the publication whose tables are streamed.
    """

    def __init__(
        self,
        database: Database,
        keys: ProjectKeys,
        replication_dsn: str,
        publication: str = "supabase_realtime",
    ) -> None:
        self.database = database
        self.keys = keys
        self.publication = publication
        self.types = TypeRegistry()
        self.visibility = Visibility(replication_dsn)
        self.hub = Hub(self.types, self.visibility)
        self.stream = ReplicationStream(
            replication_dsn, publication, self._receive, on_restart=self._replication_restarted
        )
        # Real-service delays: join error replies (CHANNEL_ERROR_BACKOFF_MS) and refused
        # connections; the idle limit closes sockets that stopped heart-beating.
        self.join_error_delay = 5.0
        self.connect_error_delay = 2.0
        self.idle_timeout = 60.0
        self._queue: asyncio.Queue[Transaction] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._topics: dict[str, dict[Channel, Sink]] = {}
        self._generation: dict[Channel, int] = {}
        self.presence = PresenceRegistry()
        self._types_stale = False
        self.sockets: set[Any] = set()  # the gateway's open Outboxes

    async def start(self) -> None:
        """Load the type catalogue and start streaming; returns once capture is on."""
        await self._load_types()
        await self.visibility.start()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="realtime-dispatch")
        await self.stream.start()
        log.info("realtime started on publication %s", self.publication)

    async def stop(self) -> None:
        """Stop streaming and fan-out; idempotent."""
        await self.stream.stop()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            self._dispatcher = None
        await self.visibility.stop()

    async def websocket_endpoint(self, websocket: WebSocket) -> None:
        """Serve one client socket (mounted at ``/realtime/v1/websocket``)."""
        from localbase.realtime.gateway import serve_socket

        await serve_socket(self, websocket)

    # Changes: replication thread -> queue -> one dispatcher task (keeps commit order).

    def _receive(self, transaction: Transaction) -> None:
        self._queue.put_nowait(transaction)

    async def _dispatch(self) -> None:
        """Deliver transactions in commit order; a backlog goes out as one batch."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                if self._types_stale or any(self._has_unknown_types(t) for t in batch):
                    await self._load_types()
                    self._types_stale = False
                await self.hub.dispatch(batch)
            except Exception:
                log.exception("dropping %d transactions after an error", len(batch))
            self.stream.confirm(batch[-1].end_lsn)

    def _has_unknown_types(self, transaction: Transaction) -> bool:
        return any(
            column.type_oid not in self.types
            for change in transaction.changes
            for column in change.relation.columns
        )

    async def _load_types(self) -> None:
        async with self.database.as_superuser() as conn:
            self.types.update_from_rows(await conn.fetch(CATALOG_QUERY))

    def _replication_restarted(self) -> None:
        """Changes may have been missed while replication was down: make every
        postgres_changes channel rejoin so its client resubscribes and catches up."""
        log.warning(
            "replication restarted; asking %d sockets to rejoin their postgres_changes channels",
            len(self.sockets),
        )
        self._types_stale = True
        for outbox in list(self.sockets):
            outbox.reset()

    # Channel lifecycle, driven by the gateway.

    def joined(self, channel: Channel, sink: Sink) -> None:
        """Register a joined channel for broadcast."""
        self._topics.setdefault(channel.topic, {})[channel] = sink

    def left(self, channel: Channel) -> None:
        """Forget a channel: no more changes, broadcasts or pending subscription results."""
        self.hub.remove(channel)
        self._generation.pop(channel, None)
        members = self._topics.get(channel.topic)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._topics[channel.topic]
        diff = self.presence.untrack(channel)
        if diff is not None:
            self._push_presence_diff(channel.topic, diff)

    async def subscribe(self, channel: Channel, sink: Sink) -> None:
        """Check the channel's bindings, make them live, then push the ``system`` message.

        The ``ok`` message is pushed right after the hub starts matching the channel, with no
        await in between, so any change committed after the client sees it is delivered.
        """
        generation = self._generation.get(channel, 0) + 1
        self._generation[channel] = generation
        try:
            await self._check(channel)
        except SubscriptionError as exc:
            if self._generation.get(channel) == generation and not channel.closed:
                self.hub.remove(channel)
                log.info("subscription on %s refused: %s", channel.topic, exc)
                sink.push(
                    system_frame(channel.topic, "postgres_changes", "error", str(exc)).encode()
                )
            return
        if self._generation.get(channel) != generation or channel.closed:
            return
        self.hub.add(channel, sink)
        sink.push(system_frame(channel.topic, "postgres_changes", "ok", SUBSCRIBED).encode())

    def broadcast(self, channel: Channel, payload: dict[str, Any]) -> None:
        """Forward a client broadcast to every channel on the topic (sender only if ``self``)."""
        text = Frame(channel.topic, "broadcast", payload, None).encode()
        for member, sink in list(self._topics.get(channel.topic, {}).items()):
            if member is not channel or channel.broadcast_self:
                sink.push(text)

    # Presence (protocol doc §4.13).

    def track(self, channel: Channel, state: dict[str, Any] | None) -> None:
        """Track or untrack a channel's presence and tell every presence member of the topic."""
        if channel.closed:
            return
        diff = (
            self.presence.untrack(channel) if state is None else self.presence.track(channel, state)
        )
        if diff is not None:
            self._push_presence_diff(channel.topic, diff)

    def push_presence_state(self, channel: Channel, sink: Sink) -> None:
        """The ``presence_state`` a channel joined with presence gets after its join reply."""
        state = self.presence.state(channel.topic)
        sink.push(Frame(channel.topic, "presence_state", state, None).encode())

    def _push_presence_diff(self, topic: str, diff: dict[str, Any]) -> None:
        text = Frame(topic, "presence_diff", diff, None).encode()
        for member, sink in list(self._topics.get(topic, {}).items()):
            if member.presence_enabled and not member.closed:
                sink.push(text)

    # Subscription checks (protocol doc §4.6, §4.8).

    async def _check(self, channel: Channel) -> None:
        role = channel.claims.get("role")
        for binding in channel.bindings:
            if binding.error is not None:
                raise SubscriptionError(binding.error)
            try:
                await self._check_binding(binding, str(role))
            except InvalidRole as exc:
                raise SubscriptionError(_exception_text(binding, str(exc))) from exc

    async def _check_binding(self, binding: Binding, role: str) -> None:
        schema = binding.schema or "public"
        table = None if binding.table in (None, "*") else binding.table
        async with self.database.as_superuser() as conn:
            if role not in ("anon", "authenticated", "service_role"):
                raise InvalidRole(role)
            if await conn.fetchval(_PUBLISHED, self.publication, schema, table) is None:
                raise SubscriptionError(
                    "Unable to subscribe to changes with given parameters. Please check "
                    "Realtime is enabled for the given connect parameters: " + binding.describe()
                )
            if table is None or not binding.conditions:
                return
            columns = {
                name: (sql_type, selectable)
                for name, sql_type, selectable in await conn.fetch(_COLUMNS, schema, table, role)
            }
            for condition in binding.conditions:
                sql_type, selectable = columns.get(condition.column, (None, False))
                if sql_type is None or not selectable:
                    raise SubscriptionError(
                        _exception_text(
                            binding,
                            "ERROR P0001 (raise_exception) invalid column for filter subject",
                        )
                    )
                await self._check_value(
                    conn, binding, condition.value, sql_type, condition.operator
                )

    async def _check_value(
        self, conn: asyncpg.Connection, binding: Binding, value: Any, sql_type: str, op: str
    ) -> None:
        if op in ("is", "like", "ilike"):
            return
        if op in ("match", "imatch"):
            await self._check_regex(conn, binding, str(value), op)
            return
        if isinstance(value, tuple):
            value, sql_type = "{" + ",".join(_array_item(v) for v in value) + "}", sql_type + "[]"
        try:
            async with conn.transaction():
                # sql_type comes from format_type() in the catalogue, never from the client.
                await conn.fetchval(f"select $1::text::{sql_type}", value)
        except asyncpg.PostgresError as exc:
            detail = (
                f"ERROR {exc.sqlstate} ({_condition_name(exc)}) {exc.args[0] if exc.args else exc}"
            )
            raise SubscriptionError(_exception_text(binding, detail)) from exc

    async def _check_regex(
        self, conn: asyncpg.Connection, binding: Binding, pattern: str, op: str
    ) -> None:
        """Refuse patterns PostgreSQL rejects, and the few Python's ``re`` cannot run."""
        try:
            async with conn.transaction():
                await conn.fetchval("select '' ~ $1", pattern)
        except asyncpg.PostgresError as exc:
            detail = (
                f"ERROR {exc.sqlstate} ({_condition_name(exc)}) {exc.args[0] if exc.args else exc}"
            )
            raise SubscriptionError(_exception_text(binding, detail)) from exc
        try:
            compile_posix(pattern, ignore_case=op == "imatch")
        except ValueError as exc:
            detail = f"ERROR 0A000 (feature_not_supported) {exc} (local Realtime)"
            raise SubscriptionError(_exception_text(binding, detail)) from exc


def _array_item(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _condition_name(exc: asyncpg.PostgresError) -> str:
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _exception_text(binding: Binding, detail: str) -> str:
    return (
        "Unable to subscribe to changes with given parameters. An exception happened so "
        f"please check your connect parameters: {binding.describe()}. Exception: {detail}"
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
