"""TaskContext: the active task of one viewer, kept live through one Realtime channel.

Order of events for a task (protocol doc §4.4-§4.6):

1. remove the previous channel, then join a new one bound to UPDATEs of `id=eq.<id>`;
2. on SUBSCRIBED fetch the row (and again when the server says the binding is live), so an
   update committed while the channel was joining is never lost;
3. apply rows from fetches and events only when they are newer (`updated_at`);
4. on a terminal status remove the channel; on errors resubscribe with backoff, then fetch.

Above the realtime client's own reconnects (which give up after five failed attempts and
never rejoin a closed channel) a monitor runs while a task is followed: it pings the socket
of a live channel and tears a silent one down, fetches the row when an active task has been
quiet for a while (and resubscribes when that fetch shows missed updates), ensures a
resubscribe is always pending while the channel is down, and meanwhile fetches the row on a
slow backoff so the view stays correct. Intervals live in `Timing`, so tests can shorten them.

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
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from services.errors import ServiceError
from services.models import ConnectionState, Notice, NoticeLevel, Task, TaskView

log = logging.getLogger(__name__)

SUBSCRIBED = "SUBSCRIBED"
CHANNEL_ERROR = "CHANNEL_ERROR"
TIMED_OUT = "TIMED_OUT"
CLOSED = "CLOSED"

ViewListener = Callable[[TaskView], None]
NoticeListener = Callable[[Notice], None]

__all__ = ["Backoff", "Notice", "TaskContext", "TaskSource", "Timing"]


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
        full = min(self.cap, self.base * 2 ** min(attempt, 30))
        return full / 2 + rng.uniform(0, full / 2)


@dataclass(frozen=True, slots=True)
class Timing:
    """How quickly a context notices trouble; a dead socket is found within
    `check_interval + ping_timeout` seconds (20 s by default)."""

    tick: float = 1.0  # how often the monitor looks
    check_interval: float = 10.0  # ping the socket of a live channel this often
    ping_timeout: float = 10.0  # no pong within this: the socket is dead
    fallback_after: float = 5.0  # channel down this long: fetch the row on `fallback`
    fallback: Backoff = field(default_factory=lambda: Backoff(base=2.0, cap=30.0))
    quiet_after: float = 30.0  # an active task unchanged this long: fetch to verify
    fetch_timeout: float = 10.0  # a fetch taking longer is given up


class TaskContext:
    """Holds the active task id and a live, merged snapshot of its row."""

    def __init__(
        self,
        source: TaskSource,
        *,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        timing: Timing | None = None,
    ) -> None:
        self.source = source
        self.backoff = backoff or Backoff()
        self.timing = timing or Timing()
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
        self._monitor: asyncio.Task[None] | None = None
        self._subscribing = False
        self._attempt = 0
        self._last_news = 0.0  # loop time of the last event, fetch or (re)subscribe
        self._down_since: float | None = None  # loop time the channel stopped being live
        self._disposed = False
        self._view = TaskView()
        self._listeners: list[ViewListener] = []
        self._notice_listeners: list[NoticeListener] = []
        # Session-level problems (token refresh) reach this context's notice listeners too.
        add_session_listener = getattr(source, "add_notice_listener", None)
        self._forget_session = (
            add_session_listener(self._notify_notice) if add_session_listener else None
        )

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
        self._down_since = asyncio.get_running_loop().time() if watch else None
        self._publish()
        log.info("active task is now %s", task_id)
        self._stop_monitor()

        await self._drop_channel()
        if generation != self._generation or not watch:
            return
        assert task_id is not None
        self._monitor = self._spawn(self._watch(task_id))
        await self._subscribe(generation)

    async def refresh(self) -> None:
        """Show the current state now (tab visible again, browser reconnected, after sleep).

        Fetches the row; a channel that is not live is resubscribed at once (the backoff
        starts over), a live one has its socket checked.
        """
        task_id = self._task_id
        if task_id is None or self._disposed:
            return
        await self._fetch(task_id)
        if self._task_id != task_id or not self._channel_wanted():
            return
        if self._connection == ConnectionState.LIVE:
            self._spawn(self._check_health(self._generation))
        elif self._connection == ConnectionState.ERROR and not self._subscribing:
            self._attempt = 0
            if self._retry is not None:
                self._retry.cancel()
            self._retry = self._spawn(self._resubscribe(self._generation, 0.0))

    async def dispose(self) -> None:
        """Remove the channel, stop every pending step and forget all listeners."""
        if self._disposed:
            return
        self._disposed = True
        self._next_generation()
        if self._forget_session is not None:
            self._forget_session()
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
        self._subscribing = True
        try:
            # Connects the socket first when it is down (the client retries a few times).
            await channel.subscribe(lambda state, error: self._on_state(generation, state, error))
        except Exception as exc:
            log.warning("subscribing to task %s failed: %s", task_id, _describe(exc))
            if generation == self._generation:
                self._fail(generation, f"could not subscribe: {_describe(exc)}")
            return
        finally:
            if generation == self._generation:
                self._subscribing = False
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
        self._stop_monitor()
        self._connection = ConnectionState.IDLE
        self._error = None
        self._start_removal()

    def _stop_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None

    def _channel_wanted(self) -> bool:
        """True while the active task can still change (a channel should be live)."""
        return (
            self._task_id is not None
            and not self._disposed
            and not (self._task is not None and self._task.status.is_terminal)
        )

    # The monitor: the outer recovery loop above the client's own reconnects

    async def _watch(self, task_id: str) -> None:
        """Runs while `task_id` is followed; ends when the task finishes or is replaced."""
        loop = asyncio.get_running_loop()
        timing = self.timing
        next_check = loop.time() + timing.check_interval
        next_poll = 0.0
        polls = 0
        self._last_news = loop.time()
        while self._task_id == task_id and self._channel_wanted():
            await asyncio.sleep(timing.tick)
            try:
                now = loop.time()
                if self._connection == ConnectionState.LIVE:
                    polls, next_poll = 0, 0.0
                    if now >= next_check:
                        next_check = now + timing.check_interval
                        await self._check_health(self._generation)
                    if now - self._last_news >= timing.quiet_after:
                        await self._verify(task_id)
                    continue
                down_since = self._down_since if self._down_since is not None else now
                if now - down_since >= timing.fallback_after and now >= next_poll:
                    log.info("task %s: realtime down %.0f s; fetching instead", task_id,
                             now - down_since)  # fmt: skip
                    await self._fetch(task_id)
                    next_poll = loop.time() + timing.fallback.delay(polls, self._rng)
                    polls += 1
                self._ensure_retry()
            except Exception:
                log.exception("task %s: monitor step failed", task_id)

    def _ensure_retry(self) -> None:
        """While the channel is down a resubscribe must always be under way or scheduled."""
        if self._connection != ConnectionState.ERROR or self._subscribing:
            return
        if self._retry is None or self._retry.done():
            log.info("task %s: no resubscribe pending; scheduling one", self._task_id)
            self._schedule_retry(self._generation)

    async def _check_health(self, generation: int) -> None:
        """Fail a channel that says it is live while its socket is gone or silent."""
        problem = self._channel_problem()
        if problem is None:
            problem = await self._ping()
        if problem is not None and generation == self._generation:
            if self._connection == ConnectionState.LIVE:
                log.warning("task %s: %s", self._task_id, problem)
                self._fail(generation, problem)

    def _channel_problem(self) -> str | None:
        channel = self._channel
        realtime = getattr(self.source.client, "realtime", None)
        if channel is None:
            return "the channel is gone"
        if realtime is None:
            return None  # not the official client (unit tests): nothing more to inspect
        if realtime.channels.get(channel.topic) is not channel:
            return "the channel was dropped by the client"
        if not channel.is_joined:
            return f"the channel is {getattr(channel.state, 'value', channel.state)}"
        if not realtime.is_connected:
            return "the realtime socket is closed"
        return None

    async def _ping(self) -> str | None:
        """Ping the realtime socket; abort it when no pong comes back in time.

        Aborting makes the client see the socket closed, so it reconnects and rejoins too.
        """
        realtime = getattr(self.source.client, "realtime", None)
        socket = getattr(realtime, "_ws_connection", None)
        if socket is None:
            return None
        try:
            pong = await socket.ping()
            await asyncio.wait_for(pong, self.timing.ping_timeout)
        except TimeoutError:
            log.warning("realtime socket silent for %.0f s; closing it", self.timing.ping_timeout)
            socket.transport.abort()
            return "the realtime socket stopped answering"
        except Exception as exc:
            return f"the realtime socket is closed ({_describe(exc)})"
        return None

    async def _verify(self, task_id: str) -> None:
        """An active task was quiet for long: fetch it; missed updates mean a deaf channel."""
        generation = self._generation
        self._last_news = asyncio.get_running_loop().time()
        missed = await self._fetch(task_id)
        if missed and generation == self._generation and self._connection == ConnectionState.LIVE:
            log.warning("task %s: the channel missed updates; resubscribing", task_id)
            self._fail(generation, "updates stopped arriving")

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
        self._subscribing = False
        self._connection = ConnectionState.LIVE
        self._down_since = None
        self._last_news = asyncio.get_running_loop().time()
        self._error = None
        self._publish()
        if recovered:
            self._notify("positive", "live updates restored")
        if self._task_id is not None:
            self._spawn(self._fetch(self._task_id))

    def _on_system(self, generation: int, payload: Any) -> None:
        if generation != self._generation or self._task_id is None:
            return
        try:
            extension = _field(payload, "extension")
            status = _field(payload, "status")
            log.debug("task %s system message %s %s", self._task_id, extension, status)
            if extension == "postgres_changes" and status == "ok":
                # The binding is live only now; fetch again to close the gap since the join.
                self._spawn(self._fetch(self._task_id))
        except Exception:
            log.exception("handling a system message for task %s failed", self._task_id)

    def _on_change(self, generation: int, payload: Any) -> None:
        if generation != self._generation:
            return
        try:
            data = payload.get("data") or {}
            record = data.get("record") or {}
            if record.get("id") != self._task_id:
                return
            self._last_news = asyncio.get_running_loop().time()
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
        if not self._channel_wanted():
            return
        first = self._connection not in (ConnectionState.ERROR, ConnectionState.RECONNECTING)
        if first or self._down_since is None:
            self._down_since = asyncio.get_running_loop().time()
        self._connection = ConnectionState.ERROR
        self._error = reason
        self._publish()
        if first:
            self._notify("warning", f"live updates interrupted: {reason}; reconnecting")
        if self._retry is None or self._retry.done():
            self._schedule_retry(generation)

    def _schedule_retry(self, generation: int) -> None:
        delay = self.backoff.delay(self._attempt, self._rng)
        self._attempt += 1
        log.info("task %s resubscribing in %.1f s", self._task_id, delay)
        self._retry = self._spawn(self._resubscribe(generation, delay))

    async def _resubscribe(self, generation: int, delay: float) -> None:
        """Replace the channel with a new one (after `delay`), reconnecting if needed."""
        await asyncio.sleep(delay)
        if generation != self._generation or self._connection == ConnectionState.LIVE:
            return
        self._retry = None
        generation = self._next_generation()
        self._connection = ConnectionState.RECONNECTING
        self._publish()
        await self._drop_channel()
        if generation == self._generation and self._channel_wanted():
            await self._subscribe(generation)

    # Rows

    async def _fetch(self, task_id: str) -> bool:
        """Fetch the row and merge it; True when it changed what is shown."""
        try:
            task = await asyncio.wait_for(self.source.fetch(task_id), self.timing.fetch_timeout)
        except TimeoutError:
            log.warning("fetching task %s timed out", task_id)
            return False
        except ServiceError as exc:
            log.warning("fetching task %s failed: %s", task_id, exc)
            reconnecting = self._connection in (ConnectionState.ERROR, ConnectionState.RECONNECTING)
            if task_id == self._task_id and not self._disposed and not reconnecting:
                # While reconnecting the user was told already; no toast per fallback fetch.
                self._notify("warning", f"could not load the task: {exc}")
            return False
        except Exception:
            log.exception("fetching task %s failed", task_id)
            return False
        if task_id != self._task_id or self._disposed:
            return False
        if task is None:
            log.warning("task %s is not visible to this user", task_id)
            self._error = "task not found"
            self._publish()
            return False
        return self._apply(task, "fetch")

    def _apply(self, task: Task, source: str) -> bool:
        """Show `task` when it is newer than the row shown; True when it was."""
        if task.id != self._task_id:
            return False
        if not task.is_newer_than(self._task):
            log.debug("task %s: stale %s ignored (%s)", task.id, source, task.updated_at)
            return False
        self._task = task
        log.debug("task %s: %s from %s (%d %%)", task.id, task.status, source, task.progress)
        if task.status.is_terminal and (
            self._channel is not None or self._connection != ConnectionState.IDLE
        ):
            self._finish()
        self._publish()
        return True

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

    def _notify(self, level: NoticeLevel, text: str) -> None:
        self._notify_notice(Notice(level, text))

    def _notify_notice(self, notice: Notice) -> None:
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
