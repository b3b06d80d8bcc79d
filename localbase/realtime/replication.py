"""Logical replication of the publication into the asyncio loop.

A dedicated thread holds a psycopg2 ``LogicalReplicationConnection``, creates a TEMPORARY
pgoutput slot (like the real Realtime's temporary wal2json slot), streams the publication
with protocol version 1 and hands each committed :class:`Transaction` to the loop with
``call_soon_threadsafe``. The loop reports back, through :meth:`ReplicationStream.confirm`,
the end LSN of the last transaction it has delivered; the thread sends that as the flush
position so the server can recycle WAL.

Why temporary: the slot lives and dies with our connection, so a crashed or killed process
never leaves a slot behind that would pin WAL forever, and a restart simply starts from the
current WAL position. Nothing is lost that anyone could receive: clients rejoin after a
restart and only changes committed after their ``system`` message are promised (§4.6).
If the connection drops while running (Postgres restarted, connection killed), the thread
reconnects with a new slot after a back-off and then calls ``on_restart`` on the loop: changes
committed in the gap were not decoded, so the service makes every postgres_changes channel
rejoin (and its client fetch) instead of letting it look live while it missed something.

WAL retention stays bounded even when nobody listens or only unpublished tables change
(pgoutput then sends nothing, not even empty transactions): whenever every decoded
transaction has been confirmed, the flush position reported is the server's WAL end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import select
import threading
import time
from collections.abc import Callable

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from localbase.blocking import run_blocking
from localbase.realtime.pgoutput import DecodeError, Transaction, TransactionAssembler

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how long one wait for data may block before the stop flag is checked
FEEDBACK_SECONDS = 1.0
WAL_END_REFRESH_SECONDS = 5.0  # how often an idle stream asks the server for its WAL end
RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)
START_TIMEOUT_SECONDS = 30.0  # creating a slot waits for running transactions to finish


class ReplicationError(Exception):
    """The replication stream could not be started."""


class ReplicationStream:
    """Stream one publication's committed transactions to a callback on an event loop.

    Args:
        dsn: libpq DSN of a role with REPLICATION (the superuser here).
        publication: publication to stream (``supabase_realtime``).
        deliver: called on the loop's thread with each committed transaction.
    """

    def __init__(
        self,
        dsn: str,
        publication: str,
        deliver: Callable[[Transaction], None],
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        self.dsn = dsn
        self.publication = publication
        self.deliver = deliver
        self.on_restart = on_restart
        self.slot_name = f"localbase_realtime_{os.getpid()}_{secrets.token_hex(4)}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready: asyncio.Future[None] | None = None
        self._confirmed_lsn = 0
        self._delivered_lsn = 0  # end of the last transaction handed to the loop
        self._lock = threading.Lock()
        self.restarts = 0
        self._assembler: TransactionAssembler | None = None

    async def start(self) -> None:
        """Create the slot and start streaming; returns once changes are being captured.

        Raises:
            ReplicationError: the slot could not be created (wal_level, permissions...).
        """
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="realtime-replication", daemon=True)
        self._thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_SECONDS)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop streaming and close the connection (which drops the temporary slot)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await run_blocking(thread.join, 10)
            if thread.is_alive():
                log.warning("replication thread did not stop within 10 s")

    def confirm(self, lsn: int) -> None:
        """Record that every transaction up to ``lsn`` has been delivered (any thread)."""
        with self._lock:
            self._confirmed_lsn = max(self._confirmed_lsn, lsn)

    # Everything below runs on the replication thread.

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._stream(restarted=attempt > 0)
                return
            except Exception as exc:
                if self._ready is not None and not self._ready.done():
                    self._signal_ready(exc)
                    return
                delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                attempt += 1
                log.warning(
                    "replication stream failed (%s); reconnecting in %.1f s, "
                    "changes committed meanwhile are not delivered",
                    exc,
                    delay,
                )
                self._stop.wait(delay)

    def _signal_ready(self, error: BaseException | None = None) -> None:
        def resolve() -> None:
            if self._ready is None or self._ready.done():
                return
            if error is None:
                self._ready.set_result(None)
            else:
                self._ready.set_exception(ReplicationError(f"replication failed: {error}"))

        assert self._loop is not None
        self._loop.call_soon_threadsafe(resolve)

    def _stream(self, *, restarted: bool) -> None:
        connection = psycopg2.connect(
            self.dsn,
            connection_factory=psycopg2.extras.LogicalReplicationConnection,
            # Values reach us as text in the walsender's settings; pin the ones that shape
            # timestamps so records look like to_jsonb output on a UTC database.
            options="-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres",
        )
        try:
            cursor = connection.cursor()
            cursor.execute(f"CREATE_REPLICATION_SLOT {self.slot_name} TEMPORARY LOGICAL pgoutput")
            cursor.start_replication(
                slot_name=self.slot_name,
                decode=False,
                options={"proto_version": "1", "publication_names": self.publication},
            )
            log.info("replication streaming %s through slot %s", self.publication, self.slot_name)
            self._signal_ready()
            if restarted:
                self.restarts += 1
                assert self._loop is not None
                if self.on_restart is not None:
                    self._loop.call_soon_threadsafe(self.on_restart)
            self._consume(cursor)
        finally:
            connection.close()

    def _consume(self, cursor: psycopg2.extras.ReplicationCursor) -> None:
        assembler = TransactionAssembler()
        self._assembler = assembler
        sent_lsn, sent_at, asked_at = 0, 0.0, 0.0
        while not self._stop.is_set():
            message = cursor.read_message()
            now = time.monotonic()
            if now - sent_at > FEEDBACK_SECONDS:
                ask = now - asked_at > WAL_END_REFRESH_SECONDS
                sent_lsn, sent_at = self._feedback(cursor, sent_lsn, ask=ask), now
                asked_at = now if ask else asked_at
            if message is None:
                select.select([cursor], [], [], POLL_SECONDS)
                continue
            try:
                transaction = assembler.feed(bytes(message.payload))
            except DecodeError:
                log.exception("undecodable pgoutput message at %x", message.data_start)
                continue
            if transaction is not None and transaction.changes:
                assert self._loop is not None
                with self._lock:
                    self._delivered_lsn = transaction.end_lsn
                self._loop.call_soon_threadsafe(self.deliver, transaction)
            elif transaction is not None:
                self.confirm(transaction.end_lsn)  # nothing to deliver, nothing to wait for

    def _feedback(
        self, cursor: psycopg2.extras.ReplicationCursor, sent_lsn: int, *, ask: bool
    ) -> int:
        """Report the flush position; ``ask`` requests a keepalive carrying the WAL end."""
        with self._lock:
            confirmed = self._confirmed_lsn
            idle = confirmed >= self._delivered_lsn
        if idle and self._assembler is not None and not self._assembler.in_transaction:
            # Everything decoded has been delivered: nothing before the server's WAL end is
            # waiting on us, so let it recycle that WAL (bounded retention while idle).
            confirmed = max(confirmed, cursor.wal_end or 0)
        if confirmed > sent_lsn or ask:
            cursor.send_feedback(flush_lsn=max(confirmed, sent_lsn), reply=ask)
        return max(confirmed, sent_lsn)
