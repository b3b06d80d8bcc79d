"""Services against a real localbase, through the official clients only.

A TaskContext watches while the real Worker claims, runs and finishes tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field

from localbase.server import LocalbaseThread
from services.jobs import JobRegistry
from services.models import ConnectionState, Task, TaskStatus, TaskView
from services.supabase_session import SupabaseSession
from services.task_context import TaskContext
from services.worker import Worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WorkerStarter = Callable[..., Awaitable[Worker]]


class SleepParams(BaseModel):
    seconds: float = Field(0.2, ge=0, le=5)


class RecordingJob:
    """Sleeps briefly and records which worker ran which task."""

    kind: ClassVar[str] = "record"
    title: ClassVar[str] = "Record"
    description: ClassVar[str] = "Test job that records its runs."
    Params: ClassVar[type[BaseModel]] = SleepParams

    def __init__(self) -> None:
        self.runs: list[str] = []

    async def run(self, params: SleepParams, reporter: Any) -> dict[str, Any]:
        self.runs.append(str(id(asyncio.current_task())))
        await asyncio.sleep(params.seconds)
        reporter.progress(100, "slept")
        return {"slept": params.seconds}


class BrokenJob:
    kind: ClassVar[str] = "broken"
    title: ClassVar[str] = "Broken"
    description: ClassVar[str] = "Test job with a bug."
    Params: ClassVar[type[BaseModel]] = SleepParams

    async def run(self, params: SleepParams, reporter: Any) -> dict[str, Any]:
        return {"ratio": 1 / 0}


@pytest.fixture(autouse=True)
async def empty_queue(service_client: Any) -> AsyncIterator[None]:
    """Cancel unfinished tasks other tests left, so each test's workers see only its own."""

    async def cancel_unfinished() -> None:
        query = service_client.table("tasks").update({"status": "cancelled"})
        await query.in_("status", ["pending", "processing"]).execute()

    await cancel_unfinished()
    yield
    await cancel_unfinished()


@pytest.fixture
async def session(localbase: LocalbaseThread) -> AsyncIterator[SupabaseSession]:
    opened = await SupabaseSession.open(localbase.url, localbase.keys.publishable_key)
    yield opened
    await opened.close()


@pytest.fixture
async def start_worker(localbase: LocalbaseThread) -> AsyncIterator[WorkerStarter]:
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(registry: JobRegistry | None = None, **options: Any) -> Worker:
        options.setdefault("poll_seconds", 1.0)
        worker = Worker(
            localbase.url,
            localbase.keys.secret_key,
            registry or JobRegistry.with_builtins(),
            **options,
        )
        running.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, _ in running:
        worker.stop()
    for _, task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=20)


async def eventually(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def watch(session: SupabaseSession, task: Task) -> tuple[TaskContext, list[TaskView]]:
    """A TaskContext on `task`, live before returning, with every view it published."""
    context = TaskContext(session)
    views: list[TaskView] = []
    context.add_listener(views.append)
    await context.set_task(task.id, initial=task)
    await eventually(lambda: context.view.connection == ConnectionState.LIVE, within=15)
    return context, views


async def wait_until_finished(session: SupabaseSession, task_ids: list[str]) -> list[Task]:
    while True:
        rows = [await session.fetch(task_id) for task_id in task_ids]
        if all(row is not None and row.status.is_terminal for row in rows):
            return [row for row in rows if row is not None]
        await asyncio.sleep(0.2)


async def test_a_demo_task_runs_live_from_pending_to_completed(
    session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    task = await session.submit("demo", {"steps": 4, "step_seconds": 0.3})
    context, views = await watch(session, task)

    await start_worker()
    await eventually(lambda: context.view.is_completed)

    statuses = [v.status for v in views if v.status is not None]
    order = list(dict.fromkeys(statuses))
    assert order == [TaskStatus.PENDING, TaskStatus.PROCESSING, TaskStatus.COMPLETED]
    progress = [v.progress for v in views if v.status == TaskStatus.PROCESSING]
    assert progress == sorted(progress)
    assert len(set(progress)) >= 3
    assert any(v.message == "step 2 of 4" for v in views)
    assert context.view.progress == 100
    result = await session.result(context.view.result_id or "")
    assert result is not None and result["steps"] == 4
    await eventually(lambda: session.client.get_channels() == [], within=5)
    await context.dispose()


async def test_a_failing_demo_task_carries_its_reason(
    session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    task = await session.submit("demo", {"steps": 3, "step_seconds": 0.1, "fail_at_step": 2})
    context, _ = await watch(session, task)

    await start_worker()
    await eventually(lambda: context.view.is_terminal)

    assert context.view.is_failed
    assert context.view.error == "step 2 of 3 failed on purpose (fail_at_step)"
    await context.dispose()


async def test_bad_input_fails_the_task_readably_and_the_worker_keeps_going(
    session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    registry = JobRegistry.with_builtins()
    registry.register(BrokenJob())
    await start_worker(registry)

    submitted = [
        await session.submit("demo", {"steps": 5000}),
        await session.submit("nope", {}),
        await session.submit("broken", {}),
        await session.submit("demo", {"steps": 1, "step_seconds": 0}),
    ]
    rows = await asyncio.wait_for(wait_until_finished(session, [t.id for t in submitted]), 30)

    assert [r.status for r in rows] == ["failed", "failed", "failed", "completed"]
    assert rows[0].error_message == (
        "invalid parameters: steps: Input should be less than or equal to 1000"
    )
    assert rows[1].error_message == "unknown job kind 'nope'"
    assert rows[2].error_message == "ZeroDivisionError: division by zero"


async def test_two_workers_never_run_the_same_task(
    session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    job = RecordingJob()
    registry = JobRegistry()
    registry.register(job)
    workers = [await start_worker(registry, worker_id=f"w{i}") for i in range(2)]

    submitted = [await session.submit("record", {"seconds": 0.2}) for _ in range(8)]
    rows = await asyncio.wait_for(wait_until_finished(session, [t.id for t in submitted]), 60)

    assert all(r.status == TaskStatus.COMPLETED for r in rows)
    assert all(r.attempts == 1 for r in rows)
    assert len(job.runs) == 8
    assert sum(w.tasks_done for w in workers) == 8
    assert {r.worker_id for r in rows} <= {"w0", "w1"}


async def test_a_stopping_worker_gives_its_task_back(
    session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    worker = await start_worker(stop_grace_seconds=0.1)
    task = await session.submit("demo", {"steps": 50, "step_seconds": 0.2})
    await poll_until(session, task.id, lambda row: row.progress > 0)

    worker.stop()
    row = await poll_until(session, task.id, lambda row: row.status == TaskStatus.PENDING)

    assert row.attempts == 0 and row.worker_id is None and row.progress == 0
    assert worker.tasks_done == 0


async def test_a_task_cancelled_while_its_worker_stops_ends_cancelled(
    session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    worker = await start_worker(stop_grace_seconds=0.1)
    task = await session.submit("demo", {"steps": 50, "step_seconds": 0.2})
    await poll_until(session, task.id, lambda row: row.progress > 0)

    await session.client.rpc("request_cancel", {"p_task_id": task.id}).execute()
    worker.stop()
    row = await poll_until(session, task.id, lambda row: row.status.is_terminal)

    assert row.status == TaskStatus.CANCELLED
    assert row.lease_expires_at is None and row.finished_at is not None


class BigParams(BaseModel):
    megabytes: float = Field(1, ge=0, le=20)


class BigResultJob:
    """Returns a result of about `megabytes` MB."""

    kind: ClassVar[str] = "big"
    title: ClassVar[str] = "Big"
    description: ClassVar[str] = "Test job with a large result."
    Params: ClassVar[type[BaseModel]] = BigParams

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, params: BigParams, reporter: Any) -> dict[str, Any]:
        self.runs += 1
        return {"blob": "x" * int(params.megabytes * 1024 * 1024)}


@pytest.mark.parametrize(
    ("limit", "reason"),
    [
        # Checked before sending: the worker's own limit.
        (1024 * 1024, "the result is too large to store (2.0 MB, limit 1.0 MB)"),
        # Refused by the API (HTTP 413 over 10 MB): final at once, no retries, no re-runs.
        (100 * 1024 * 1024, "the result is too large to store (11.0 MB, refused by the API)"),
    ],
)
async def test_a_result_too_large_to_store_fails_the_task_at_once(
    session: SupabaseSession, start_worker: WorkerStarter, limit: int, reason: str
) -> None:
    job = BigResultJob()
    registry = JobRegistry.with_builtins()
    registry.register(job)
    megabytes = 2 if limit < 10 * 1024 * 1024 else 11
    task = await session.submit("big", {"megabytes": megabytes})
    await start_worker(registry, max_result_bytes=limit)

    async with asyncio.timeout(15):
        (row,) = await wait_until_finished(session, [task.id])

    assert row.status == TaskStatus.FAILED
    assert row.error_message == reason
    assert row.attempts == 1 and job.runs == 1


async def poll_until(
    session: SupabaseSession, task_id: str, predicate: Callable[[Task], bool], within: float = 15
) -> Task:
    async with asyncio.timeout(within):
        while True:
            row = await session.fetch(task_id)
            if row is not None and predicate(row):
                return row
            await asyncio.sleep(0.1)


async def test_a_restored_identity_is_the_same_user_with_a_rotated_token(
    localbase: LocalbaseThread,
) -> None:
    identities: list[dict[str, str]] = []
    first = await SupabaseSession.open(
        localbase.url, localbase.keys.publishable_key, on_identity=identities.append
    )
    task = await first.submit("demo", {"steps": 1})
    stored = first.identity
    await first.close()

    again = await SupabaseSession.open(
        localbase.url, localbase.keys.publishable_key, stored=stored, on_identity=identities.append
    )
    try:
        assert stored is not None
        assert again.user_id == stored["user_id"]
        assert again.identity is not None
        assert again.identity["refresh_token"] != stored["refresh_token"]
        assert identities[-1] == again.identity
        fetched = await again.fetch(task.id)
        assert fetched is not None and fetched.id == task.id
    finally:
        await again.close()


async def test_another_user_cannot_see_or_watch_my_task(
    session: SupabaseSession, localbase: LocalbaseThread
) -> None:
    task = await session.submit("demo", {"steps": 1})
    stranger = await SupabaseSession.open(localbase.url, localbase.keys.publishable_key)
    try:
        assert stranger.user_id != session.user_id
        assert await stranger.fetch(task.id) is None
    finally:
        await stranger.close()


async def test_progress_is_coalesced_but_the_final_value_always_arrives(
    session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    task = await session.submit("demo", {"steps": 300, "step_seconds": 0.002})
    context, views = await watch(session, task)

    await start_worker(progress_interval=0.1)
    await eventually(lambda: context.view.is_completed)

    processing = [v for v in views if v.status == TaskStatus.PROCESSING]
    assert 1 <= len(processing) < 40  # ~0.6 s of work at most ~10 reports a second
    assert processing[-1].message == "step 300 of 300"
    assert processing[-1].progress == 100
    await context.dispose()


async def test_a_cancel_request_stops_the_job_and_marks_the_task_cancelled(
    session: SupabaseSession, start_worker: WorkerStarter, service_client: Any
) -> None:
    task = await session.submit("demo", {"steps": 100, "step_seconds": 0.1})
    context, _ = await watch(session, task)
    await start_worker(lease_seconds=3)
    await eventually(lambda: context.view.progress > 0)

    query = service_client.table("tasks").update({"cancel_requested": True}).eq("id", task.id)
    await query.execute()

    await eventually(lambda: context.view.is_terminal, within=10)
    assert context.view.status == TaskStatus.CANCELLED
    assert context.view.progress < 100
    await context.dispose()


async def test_a_dropped_socket_is_rejoined_and_caught_up(
    session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    task = await session.submit("demo", {"steps": 20, "step_seconds": 0.1})
    context, views = await watch(session, task)
    await start_worker()
    await eventually(lambda: context.view.progress > 0)

    socket = session.client.realtime._ws_connection  # drop the connection under the client
    assert socket is not None
    await socket.close()

    await eventually(lambda: context.view.is_completed)
    connections = [v.connection for v in views]
    assert ConnectionState.ERROR in connections
    assert ConnectionState.LIVE in connections[connections.index(ConnectionState.ERROR) :]
    await context.dispose()


async def test_an_unreadable_task_row_fails_alone_and_the_queue_moves_on(
    session: SupabaseSession, start_worker: WorkerStarter, service_client: Any
) -> None:
    poison = await (
        service_client.table("tasks")
        .insert({"kind": "demo", "user_id": session.user_id, "created_at": "-infinity"})
        .execute()
    )
    task = await session.submit("demo", {"steps": 1, "step_seconds": 0})
    await start_worker()

    ids = [poison.data[0]["id"], task.id]

    async def finished_rows() -> list[dict[str, Any]]:
        while True:
            query = service_client.table("tasks").select("id, status, error_message")
            rows = (await query.in_("id", ids).execute()).data
            if len(rows) == 2 and all(r["status"] in ("failed", "completed") for r in rows):
                return sorted(rows, key=lambda r: ids.index(r["id"]))
            await asyncio.sleep(0.2)

    rows = await asyncio.wait_for(finished_rows(), 30)

    assert [r["status"] for r in rows] == ["failed", "completed"]
    assert rows[0]["error_message"] == "the task row could not be read"
