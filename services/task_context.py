"""TaskContext: the active task of one viewer, kept live through one Realtime channel.

Order of events for a task (protocol doc §4.4-§4.6):

1. remove the previous channel, then join a new one bound to UPDATEs of `id=eq.<id>`;
2. on SUBSCRIBED fetch the row (and again when the server says the binding is live), so an
   update committed while the channel was joining is never lost;
3. apply rows from fetches and events only when they are newer (`updated_at`);
4. on a terminal status remove the channel; on errors resubscribe with backoff, then fetch.

Every callback from the realtime client runs on the event loop; all state lives there too.
A generation counter ties each callback to the channel it was registered on, so callbacks
from a channel that has been replaced are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from services.errors import ServiceError
from services.models import ConnectionState, Task, TaskView

log = logging.getLogger(__name__)

SUBSCRIBED = "SUBSCRIBED"
CHANNEL_ERROR = "CHANNEL_ERROR"
TIMED_OUT = "TIMED_OUT"
CLOSED = "CLOSED"

ViewListener = Callable[[TaskView], None]
NoticeListener = Callable[["Notice"], None]


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for a toast; `level` uses NiceGUI's notification types."""

    level: Literal["positive", "negative", "warning", "info"]
    text: str


class TaskSource(Protocol):
    """What TaskContext needs from a session: the official client and a row fetch."""

    client: Any

    async def fetch(self, task_id: str) -> Task | None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays for resubscribing: exponential, capped, with half of each delay jittered."""

    base: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        full = min(self.cap, self.base * 2**attempt)
        return full / 2 + rng.uniform(0, full / 2)


class TaskContext:
    """Holds the active task id and a live, merged snapshot of its row."""

    def __init__(
        self,
        source: TaskSource,
        *,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._name = uuid.uuid4().hex[:8]
        self._task_id: str | None = None
        self._task: Task | None = None
        self._connection = ConnectionState.IDLE
        self._error: str | None = None
        self._generation = 0
        self._channel: Any = None
        self._removals: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._retry: asyncio.Task[None] | None = None
        self._attempt = 0
        self._disposed = False
        self._view = TaskView()
        self._listeners: list[ViewListener] = []
        self._notice_listeners: list[NoticeListener] = []

    # Public surface

    @property
    def view(self) -> TaskView:
        return self._view

    @property
    def task_id(self) -> str | None:
        return self._task_id

    @property
    def task(self) -> Task | None:
        """The newest row known for the active task."""
        return self._task

    @property
    def channel(self) -> Any:
        """The one channel this context holds, or None."""
        return self._channel

    def add_listener(self, listener: ViewListener) -> Callable[[], None]:
        """Call `listener(view)` on every change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def add_notice_listener(self, listener: NoticeListener) -> Callable[[], None]:
        """Call `listener(notice)` for toasts; returns a function that removes it."""
        self._notice_listeners.append(listener)
        return lambda: (
            self._notice_listeners.remove(listener) if listener in self._notice_listeners else None
        )

    async def set_task(self, task_id: str | None, initial: Task | None = None) -> None:
        """Make `task_id` the active task (None clears it) and follow it live.

        `initial` (e.g. the row returned by submit) is shown at once; fetched rows and
        events replace it only when they are newer.
        """
        if self._disposed:
            raise RuntimeError("task context is disposed")
        generation = self._next_generation()
        self._task_id = task_id
        self._task = initial if initial is not None and initial.id == task_id else None
        self._error = None
        self._attempt = 0
        watch = task_id is not None and not (self._task and self._task.status.is_terminal)
        self._connection = ConnectionState.CONNECTING if watch else ConnectionState.IDLE
        self._publish()
        log.info("active task is now %s", task_id)

        await self._drop_channel()
        if generation != self._generation or not watch:
            return
        await self._subscribe(generation)

    async def refresh(self) -> None:
        """Fetch the active task's row now and merge it."""
        if self._task_id is not None:
            await self._fetch(self._task_id)

    async def dispose(self) -> None:
        """Remove the channel, stop every pending step and forget all listeners."""
        if self._disposed:
            return
        self._disposed = True
        self._next_generation()
        for task in list(self._background):
            task.cancel()
        await self._drop_channel()
        self._listeners.clear()
        self._notice_listeners.clear()
        log.debug("task context %s disposed", self._name)

    # Channel lifecycle

    def _next_generation(self) -> int:
        """Invalidate every callback and pending step tied to the current channel."""
        self._generation += 1
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        return self._generation

    async def _subscribe(self, generation: int) -> None:
        task_id = self._task_id
        assert task_id is not None
        channel = self.source.client.channel(f"task:{task_id}:{self._name}:{generation}")
        self._channel = channel
        channel.on_postgres_changes(
            "UPDATE",
            lambda payload: self._on_change(generation, payload),
            table="tasks",
            schema="public",
            filter=f"id=eq.{task_id}",
        )
        channel.on_system(lambda payload: self._on_system(generation, payload))
        try:
            await channel.subscribe(lambda state, error: self._on_state(generation, state, error))
        except Exception as exc:
            log.warning("subscribing to task %s failed: %s", task_id, exc)
            if generation == self._generation:
                self._fail(generation, f"could not subscribe: {_describe(exc)}")
            return
        if generation != self._generation and self._channel is not channel:
            # Replaced while joining; make sure this channel does not linger.
            await self._remove(channel)

    def _start_removal(self) -> None:
        """Detach the current channel at once and remove it in the background."""
        channel, self._channel = self._channel, None
        if channel is not None:
            removal = asyncio.create_task(self._remove(channel))
            self._removals.add(removal)
            removal.add_done_callback(self._removals.discard)

    async def _drop_channel(self) -> None:
        """Remove the current channel and wait for every removal still under way."""
        self._start_removal()
        if self._removals:
            await asyncio.shield(asyncio.gather(*self._removals, return_exceptions=True))

    async def _remove(self, channel: Any) -> None:
        try:
            await self.source.client.remove_channel(channel)
            log.debug("removed channel %s", getattr(channel, "topic", channel))
        except Exception as exc:
            log.warning("removing a channel failed: %s", _describe(exc))

    def _finish(self) -> None:
        """The task reached a terminal status: no more updates will come."""
        self._next_generation()
        self._connection = ConnectionState.IDLE
        self._error = None
        self._start_removal()

    # Callbacks from the realtime client (on the loop; they must never raise)

    def _on_state(self, generation: int, state: Any, error: Exception | None) -> None:
        state = str(getattr(state, "value", state))
        current = generation == self._generation
        log.info(
            "task %s subscription %s%s%s",
            self._task_id,
            state,
            f" ({_describe(error)})" if error else "",
            "" if current else " (replaced channel, ignored)",
        )
        if not current:
            return
        try:
            if state == SUBSCRIBED:
                self._on_subscribed(generation)
            elif state in (CHANNEL_ERROR, TIMED_OUT):
                reason = _describe(error) if error else "subscription timed out"
                self._fail(generation, reason)
            elif state == CLOSED:
                self._fail(generation, "the server closed the subscription")
        except Exception:
            log.exception("handling subscription state %s failed", state)

    def _on_subscribed(self, generation: int) -> None:
        recovered = self._connection in (ConnectionState.ERROR, ConnectionState.RECONNECTING)
        self._attempt = 0
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._connection = ConnectionState.LIVE
        self._error = None
        self._publish()
        if recovered:
            self._notify("positive", "live updates restored")
        if self._task_id is not None:
            self._spawn(self._fetch(self._task_id))

    def _on_system(self, generation: int, payload: Any) -> None:
        if generation != self._generation or self._task_id is None:
            return
        extension = _field(payload, "extension")
        status = _field(payload, "status")
        log.debug("task %s system message %s %s", self._task_id, extension, status)
        if extension == "postgres_changes" and status == "ok":
            # The binding is live only now; fetch again to close the gap since the join.
            self._spawn(self._fetch(self._task_id))

    def _on_change(self, generation: int, payload: Any) -> None:
        if generation != self._generation:
            return
        try:
            data = payload.get("data") or {}
            record = data.get("record") or {}
            if record.get("id") != self._task_id:
                return
            task = self._task.merged(record) if self._task else Task.model_validate(record)
        except (AttributeError, ValidationError) as exc:
            log.warning("ignoring an unreadable change for task %s: %s", self._task_id, exc)
            return
        try:
            self._apply(task, "event")
        except Exception:
            log.exception("applying a change for task %s failed", self._task_id)

    # Errors and resubscription

    def _fail(self, generation: int, reason: str) -> None:
        first = self._connection not in (ConnectionState.ERROR, ConnectionState.RECONNECTING)
        self._connection = ConnectionState.ERROR
        self._error = reason
        self._publish()
        if first:
            self._notify("warning", f"live updates interrupted: {reason}; reconnecting")
        if self._retry is None or self._retry.done():
            delay = self.backoff.delay(self._attempt, self._rng)
            self._attempt += 1
            log.info("task %s resubscribing in %.1f s", self._task_id, delay)
            self._retry = self._spawn(self._resubscribe(generation, delay))

    async def _resubscribe(self, generation: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if generation != self._generation or self._connection == ConnectionState.LIVE:
            return
        self._retry = None
        generation = self._next_generation()
        self._connection = ConnectionState.RECONNECTING
        self._publish()
        await self._drop_channel()
        if generation == self._generation:
            await self._subscribe(generation)

    # Rows

    async def _fetch(self, task_id: str) -> None:
        try:
            task = await self.source.fetch(task_id)
        except ServiceError as exc:
            log.warning("fetching task %s failed: %s", task_id, exc)
            if task_id == self._task_id and not self._disposed:
                self._notify("warning", f"could not load the task: {exc}")
            return
        except Exception:
            log.exception("fetching task %s failed", task_id)
            return
        if task_id != self._task_id or self._disposed:
            return
        if task is None:
            log.warning("task %s is not visible to this user", task_id)
            self._error = "task not found"
            self._publish()
            return
        self._apply(task, "fetch")

    def _apply(self, task: Task, source: str) -> None:
        if task.id != self._task_id:
            return
        if not task.is_newer_than(self._task):
            log.debug("task %s: stale %s ignored (%s)", task.id, source, task.updated_at)
            return
        self._task = task
        log.debug("task %s: %s from %s (%d %%)", task.id, task.status, source, task.progress)
        if task.status.is_terminal and (
            self._channel is not None or self._connection != ConnectionState.IDLE
        ):
            self._finish()
        self._publish()

    # Fan-out

    def _publish(self) -> None:
        view = TaskView.build(self._task_id, self._task, self._connection, self._error)
        if view == self._view:
            return
        self._view = view
        for listener in list(self._listeners):
            try:
                listener(view)
            except Exception:
                log.exception("task view listener failed")

    def _notify(self, level: Literal["positive", "negative", "warning", "info"], text: str) -> None:
        notice = Notice(level, text)
        for listener in list(self._notice_listeners):
            try:
                listener(notice)
            except Exception:
                log.exception("notice listener failed")

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _field(payload: Any, name: str) -> Any:
    if isinstance(payload, dict):
        return payload.get(name)
    return getattr(payload, name, None)


def _describe(error: BaseException | None) -> str:
    text = str(error) if error is not None else ""
    return text[:200] if text else type(error).__name__
