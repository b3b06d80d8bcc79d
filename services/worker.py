"""Worker: claims pending tasks through the rpc functions and runs the job for each kind.

Waking up: a Realtime subscription to INSERTs on `public.tasks` (as service_role) sets an
event, and a slow safety claim every `poll_seconds` picks up expired leases and anything a
dropped subscription missed. When the API cannot be reached the worker waits with a capped,
jittered backoff; a job's exception only ever fails that task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from postgrest import APIError
from pydantic import ValidationError
from supabase import AsyncClient, acreate_client

from services.jobs import JobError, JobRegistry, UnknownJobKind, describe_invalid_params
from services.models import Task
from services.settings import Settings

log = logging.getLogger(__name__)

LOST_LEASE_CODE = "PT409"
PAYLOAD_TOO_LARGE_CODE = "413"
MAX_ERROR_LENGTH = 500
MB = 1024 * 1024
# The REST gateway refuses bodies over 10 MB (HTTP 413); leave room for the rest of the call.
MAX_RESULT_BYTES = 8 * MB


class LeaseLost(Exception):
    """Another worker owns the task now (our lease expired)."""


class PayloadTooLarge(Exception):
    """The API refused the call's body as too large (HTTP 413); retrying cannot help."""


class ProgressReporter:
    """Collects a job's progress; the worker sends the latest value, at most every interval.

    `progress()` may be called from the loop or from a thread started by the job.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._latest: tuple[int, str | None] = (0, None)
        self.changed = asyncio.Event()
        self._cancelled = False

    def progress(self, percent: float, message: str | None = None) -> None:
        self._latest = (int(max(0, min(100, round(percent)))), message)
        if threading.get_ident() == self._loop_thread:
            self.changed.set()
        else:
            self._loop.call_soon_threadsafe(self.changed.set)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def latest(self) -> tuple[int, str | None]:
        return self._latest


class Worker:
    """Runs tasks until stopped; several workers may share one project."""

    def __init__(
        self,
        url: str,
        secret_key: str,
        registry: JobRegistry,
        worker_id: str | None = None,
        lease_seconds: int | None = None,
        *,
        poll_seconds: float | None = None,
        progress_interval: float = 0.1,
        stop_grace_seconds: float = 10.0,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self.url = url
        self._secret_key = secret_key
        self.registry = registry
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        if lease_seconds is None or poll_seconds is None:
            # Unset: WORKER_LEASE_SECONDS / WORKER_POLL_SECONDS from the environment or .env.
            settings = Settings()
            lease_seconds = lease_seconds or settings.worker_lease_seconds
            poll_seconds = poll_seconds or settings.worker_poll_seconds
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.progress_interval = progress_interval
        self.stop_grace_seconds = stop_grace_seconds
        self.max_result_bytes = max_result_bytes
        self.client: AsyncClient | None = None
        self.tasks_done = 0  # finished here: completed, failed or cancelled
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._wakeup_task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    # Lifecycle

    def stop(self) -> None:
        """Ask the worker to stop; a running task gets `stop_grace_seconds` to finish."""
        self._stop.set()
        self._wake.set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Claim and run tasks until `stop` is set, `stop()` is called or this is cancelled."""
        if stop is not None:
            watcher = asyncio.create_task(self._forward_stop(stop))
        log.info("worker %s starting", self.worker_id)
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    await self._connect()
                    self._wake.clear()
                    while not self._stop.is_set() and await self.run_once():
                        pass
                    failures = 0
                except Exception as exc:
                    failures += 1
                    delay = _backoff(failures, self._rng)
                    log.warning("worker cannot reach the api (%s); retrying in %.1f s", exc, delay)
                    await self._pause(delay)
                    continue
                await self._idle(self.poll_seconds)
        finally:
            if stop is not None:
                watcher.cancel()
            await self._close()
            log.info("worker %s stopped after %d tasks", self.worker_id, self.tasks_done)

    async def _forward_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stop()

    async def _idle(self, seconds: float) -> None:
        """Wait for a wake-up, a stop or the timeout, whichever comes first."""
        await _wait_event(self._wake, seconds)

    async def _pause(self, seconds: float) -> None:
        """Wait for a stop or the timeout; wake-ups do not shorten a backoff."""
        await _wait_event(self._stop, seconds)

    async def _connect(self) -> None:
        if self.client is None:
            self.client = await acreate_client(self.url, self._secret_key)
        if self._wakeup_task is None or self._wakeup_task.done():
            self._wakeup_task = asyncio.create_task(self._keep_wakeup(), name="worker-wakeup")

    async def _close(self) -> None:
        if self._wakeup_task is not None:
            self._wakeup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._wakeup_task
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.remove_all_channels()
            await self.client.postgrest.aclose()
            await self.client.auth.close()
            self.client = None

    # Wake-up subscription

    async def _keep_wakeup(self) -> None:
        """Hold a channel on INSERTs into tasks; recreate it when it is lost.

        The realtime client rejoins by itself after errors, but gives up after a few failed
        reconnects and never rejoins after a server close, so a channel that stays errored
        for `WAKEUP_STALE_SECONDS` or is closed is replaced.
        """
        attempt = 0
        while not self._stop.is_set():
            state = _WakeupState()
            channel = self._wakeup_channel()
            try:
                await channel.subscribe(state.on_state(self._wake))
                while not state.is_lost():
                    await _wait_event(state.closed, 1.0)
                log.info("worker wake-up channel lost; recreating it")
            except Exception as exc:
                log.warning("worker wake-up subscription failed: %s", exc)
            finally:
                assert self.client is not None
                with contextlib.suppress(Exception):
                    await self.client.remove_channel(channel)
            attempt = 0 if state.was_subscribed else attempt + 1
            await self._pause(_backoff(max(1, attempt), self._rng))

    def _wakeup_channel(self) -> Any:
        assert self.client is not None
        channel = self.client.channel(f"worker-wakeup:{self.worker_id}:{uuid.uuid4().hex[:6]}")
        channel.on_postgres_changes(
            "INSERT", lambda payload: self._wake.set(), table="tasks", schema="public"
        )
        return channel

    # One task

    async def run_once(self) -> bool:
        """Claim one task and run it to the end; False when nothing was waiting."""
        await self._connect()
        assert self.client is not None
        params = {"p_worker_id": self.worker_id, "p_lease_seconds": self.lease_seconds}
        response = await self.client.rpc("claim_task", params).execute()
        rows = response.data or []
        if not rows:
            return False
        try:
            task = Task.model_validate(rows[0])
        except ValidationError as exc:
            # One unreadable row must fail alone, not look like an outage to the claim loop.
            task_id = str(rows[0].get("id", "")) if isinstance(rows[0], dict) else ""
            log.error("claimed task %s is unreadable: %s", task_id or "?", exc)
            if task_id:
                await self._finish_failed(task_id, "the task row could not be read")
            return True
        log.info("worker %s claimed task %s (%s), attempt %d", self.worker_id, task.id,
                 task.kind, task.attempts)  # fmt: skip
        await self._process(task)
        return True

    async def _process(self, task: Task) -> None:
        try:
            job = self.registry.get(task.kind)
            params = job.Params.model_validate(task.params)
        except UnknownJobKind as exc:
            await self._finish_failed(task.id, str(exc))
            return
        except ValidationError as exc:
            await self._finish_failed(task.id, describe_invalid_params(exc))
            return

        reporter = ProgressReporter(asyncio.get_running_loop())
        job_run = asyncio.create_task(job.run(params, reporter), name=f"job-{task.id}")
        pump = asyncio.create_task(self._pump_progress(task, reporter, job_run))
        try:
            await self._wait_for_job(job_run)
            lost = await pump  # ends by itself once the job is done, after the final report
        except asyncio.CancelledError:
            reporter.cancel()
            job_run.cancel()
            pump.cancel()
            await asyncio.shield(self._release(task))
            raise
        await self._conclude(task, reporter, job_run, lease_lost=lost)

    async def _wait_for_job(self, job_run: asyncio.Task[Any]) -> None:
        """Wait for the job; on stop give it the grace period, then cancel it."""
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({job_run, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if job_run.done():
            return
        log.info("worker stopping; giving task %.0f s to finish", self.stop_grace_seconds)
        await asyncio.wait({job_run}, timeout=self.stop_grace_seconds)
        if not job_run.done():
            job_run.cancel()
            await asyncio.wait({job_run})

    async def _conclude(
        self, task: Task, reporter: ProgressReporter, job_run: asyncio.Task[Any], lease_lost: bool
    ) -> None:
        if lease_lost:
            log.warning("task %s: lease lost to another worker; result dropped", task.id)
            return
        if job_run.cancelled():
            if reporter.cancelled and not self._stop.is_set():
                await self._finish_cancelled(task)
            else:
                await self._release(task)
            return
        exc = job_run.exception()
        if exc is None:
            await self._finish_completed(task, reporter, job_run.result())
        elif isinstance(exc, JobError):
            log.info("task %s failed: %s", task.id, exc)
            await self._finish_failed(task.id, str(exc))
        else:
            log.error("task %s: job %s raised", task.id, task.kind, exc_info=exc)
            await self._finish_failed(task.id, _readable(exc))

    async def _pump_progress(
        self, task: Task, reporter: ProgressReporter, job_run: asyncio.Task[Any]
    ) -> bool:
        """Send progress (coalesced) and renew the lease until the job is done.

        Returns True when the lease was lost; cancels the job on a cancel request. Ends on
        its own when the job ends (cancelling it could be swallowed by `wait_for` on 3.11).
        """
        renew_every = max(1.0, self.lease_seconds / 3)
        sent: tuple[int, str | None] | None = None
        sent_at = 0.0
        failures = 0
        try:
            while not job_run.done():
                changed = asyncio.ensure_future(reporter.changed.wait())
                try:
                    await asyncio.wait(
                        {changed, job_run}, timeout=renew_every, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    changed.cancel()
                if job_run.done():
                    break
                reporter.changed.clear()
                wait = sent_at + self.progress_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                value, sent_at = reporter.latest, time.monotonic()
                cancel_requested = await self._report(task, *value)
                if cancel_requested is None:  # API unreachable: back off, keep the job going
                    failures += 1
                    delay = _backoff(failures, self._rng, cap=renew_every)
                    await asyncio.wait({job_run}, timeout=delay)
                    continue
                failures, sent = 0, value
                if cancel_requested:
                    log.info("task %s: cancel requested", task.id)
                    reporter.cancel()
                    job_run.cancel()
            if not job_run.cancelled() and job_run.exception() is None and reporter.latest != sent:
                # Always send the final value, even if it was coalesced away.
                await self._report(task, *reporter.latest)
        except LeaseLost:
            job_run.cancel()
            return True
        return False

    async def _report(self, task: Task, percent: int, message: str | None) -> bool | None:
        """One report_progress call; True when the user asked to cancel, None on failure."""
        try:
            response = await self._rpc(
                "report_progress",
                {"p_task_id": task.id, "p_worker_id": self.worker_id, "p_progress": percent,
                 "p_message": message, "p_lease_seconds": self.lease_seconds},
            )  # fmt: skip
        except LeaseLost:
            raise
        except Exception as exc:
            log.warning("task %s: progress report failed: %s", task.id, exc)
            return None
        return response is True

    # Finishing

    async def _finish_completed(self, task: Task, reporter: ProgressReporter, result: Any) -> None:
        if not isinstance(result, dict):
            await self._finish_failed(task.id, f"job returned {type(result).__name__}, not a dict")
            return
        try:
            text = json.dumps(result, default=str, allow_nan=False, separators=(",", ":"))
        except ValueError as exc:
            await self._finish_failed(task.id, f"job result cannot be stored as JSON: {exc}")
            return
        size = len(text.encode())
        if size > self.max_result_bytes:
            await self._finish_failed(task.id, self._too_large(size))
            return
        params = {"p_task_id": task.id, "p_worker_id": self.worker_id,
                  "p_result": json.loads(text), "p_message": reporter.latest[1]}  # fmt: skip
        try:
            completed = await self._finish_call("complete_task", params, task.id)
        except PayloadTooLarge:
            reason = f"the result is too large to store ({size / MB:.1f} MB, refused by the API)"
            await self._finish_failed(task.id, reason)
            return
        if completed:
            log.info("task %s completed", task.id)

    def _too_large(self, size: int) -> str:
        limit = self.max_result_bytes
        return f"the result is too large to store ({size / MB:.1f} MB, limit {limit / MB:.1f} MB)"

    async def _finish_failed(self, task_id: str, error: str) -> None:
        params = {"p_task_id": task_id, "p_worker_id": self.worker_id,
                  "p_error": error[:MAX_ERROR_LENGTH]}  # fmt: skip
        if await self._finish_call("fail_task", params, task_id):
            log.info("task %s failed: %s", task_id, error)

    async def _finish_cancelled(self, task: Task) -> None:
        """Mark a task the user cancelled; there is no rpc for it, so update as service_role."""
        values = {"status": "cancelled", "message": "cancelled", "lease_expires_at": None,
                  "finished_at": _now_iso()}  # fmt: skip
        if await self._update_owned(task, values, "cancel"):
            self.tasks_done += 1

    async def _release(self, task: Task) -> None:
        """Give an unfinished task back (worker stopping), so another worker starts it anew.

        A task whose cancel was requested ends `cancelled` instead: claim_task skips pending
        rows with `cancel_requested`, so it would otherwise wait forever. The release only
        matches a row without the flag; a request_cancel after it finds the task pending and
        cancels it at once, one before it makes the release match nothing, and then the
        second update (only rows with the flag) cancels it.
        """
        values = {"status": "pending", "worker_id": None, "lease_expires_at": None,
                  "progress": 0, "message": "waiting for a worker",
                  "attempts": max(0, task.attempts - 1)}  # fmt: skip
        released = await self._update_owned(task, values, "release", cancel_requested=False)
        if released is None:
            return
        if released:
            log.info("task %s released", task.id)
            return
        values = {"status": "cancelled", "message": "cancelled", "lease_expires_at": None,
                  "finished_at": _now_iso()}  # fmt: skip
        if await self._update_owned(task, values, "cancel", cancel_requested=True):
            log.info("task %s cancelled while the worker stopped", task.id)
            self.tasks_done += 1

    async def _update_owned(
        self,
        task: Task,
        values: dict[str, Any],
        what: str,
        *,
        cancel_requested: bool | None = None,
    ) -> bool | None:
        """Update the task if this worker still processes it; whether a row matched, None on
        an error. `cancel_requested` set: only when the row's flag has that value."""
        assert self.client is not None
        query = (
            self.client.table("tasks")
            .update(values)
            .eq("id", task.id)
            .eq("worker_id", self.worker_id)
            .eq("status", "processing")
        )
        if cancel_requested is not None:
            query = query.eq("cancel_requested", cancel_requested)
        try:
            response = await query.execute()
        except Exception as exc:
            log.warning("task %s: %s failed (%s); the lease will expire instead", task.id, what,
                        exc)  # fmt: skip
            return None
        return bool(response.data)

    async def _finish_call(self, function: str, params: dict[str, Any], task_id: str) -> bool:
        """Call a finishing rpc, retrying network errors a few times."""
        for attempt in range(1, 6):
            try:
                await self._rpc(function, params)
                self.tasks_done += 1
                return True
            except LeaseLost:
                log.warning("task %s: %s refused, lease lost to another worker", task_id, function)
                return False
            except APIError as exc:
                if exc.code == PAYLOAD_TOO_LARGE_CODE:
                    log.warning("task %s: %s refused as too large: %s", task_id, function, exc)
                    raise PayloadTooLarge(exc.message or function) from exc
                log.warning("task %s: %s failed (%s), attempt %d", task_id, function, exc, attempt)
                await asyncio.sleep(_backoff(attempt, self._rng, cap=8.0))
            except Exception as exc:
                log.warning("task %s: %s failed (%s), attempt %d", task_id, function, exc, attempt)
                await asyncio.sleep(_backoff(attempt, self._rng, cap=8.0))
        log.error("task %s: giving up on %s; the lease will expire", task_id, function)
        return False

    async def _rpc(self, function: str, params: dict[str, Any]) -> Any:
        assert self.client is not None
        try:
            response = await self.client.rpc(function, params).execute()
        except APIError as exc:
            if exc.code == LOST_LEASE_CODE:
                raise LeaseLost(exc.message or function) from exc
            raise
        return response.data


WAKEUP_STALE_SECONDS = 30.0


class _WakeupState:
    """What the wake-up channel's subscribe callback has reported."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.errored_since: float | None = None
        self.was_subscribed = False

    def on_state(self, wake: asyncio.Event) -> Any:
        def callback(state: Any, error: Exception | None) -> None:
            state = str(getattr(state, "value", state))
            log.info("worker wake-up subscription %s", state)
            if state == "SUBSCRIBED":
                self.errored_since = None
                self.was_subscribed = True
                wake.set()  # claim whatever was inserted while nobody was listening
            elif state == "CLOSED":
                self.closed.set()
            elif self.errored_since is None:
                self.errored_since = time.monotonic()

        return callback

    def is_lost(self) -> bool:
        if self.closed.is_set():
            return True
        since = self.errored_since
        return since is not None and time.monotonic() - since > WAKEUP_STALE_SECONDS


async def _wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait for `event` at most `seconds`; True when it is set.

    Built on `asyncio.wait`, which never swallows a cancellation of the caller.
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()
    return event.is_set()


def _backoff(attempt: int, rng: random.Random, cap: float = 30.0) -> float:
    full = min(cap, 2 ** max(0, attempt - 1))
    return full / 2 + rng.uniform(0, full / 2)


def _readable(exc: BaseException) -> str:
    """A one-line reason for an unexpected exception: its type and message, no traceback."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:MAX_ERROR_LENGTH]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
