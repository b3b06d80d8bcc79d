"""Fixtures for fault injection: a restartable localbase on a fixed port, a TCP proxy in front
of it for the viewer, a viewer session and context with short timings, and workers.

The viewer reaches localbase only through the proxy, so cutting the proxy cuts its REST and
Realtime traffic; workers talk to localbase directly and keep going meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from localbase.database import parse_dsn
from localbase.server import LocalbaseThread
from services.jobs import JobRegistry
from services.models import ConnectionState, Task, TaskView
from services.supabase_session import SupabaseSession
from services.task_context import Backoff, TaskContext, Timing
from services.worker import Worker
from tests.faults.proxy import TcpProxy, free_port

# Short timings: a silent socket is found within ~2 s, fallback fetches start after 1 s.
FAST_TIMING = Timing(
    tick=0.1,
    check_interval=1.0,
    ping_timeout=1.0,
    fallback_after=1.0,
    fallback=Backoff(base=0.5, cap=2.0),
    quiet_after=4.0,
    fetch_timeout=3.0,
)
FAST_BACKOFF = Backoff(base=0.5, cap=2.0)
# The realtime client gives up after 4 failed connects within ~1.5 s instead of ~15 s.
FAST_REALTIME = {"initial_backoff": 0.1, "max_retries": 5}

WorkerStarter = Callable[..., Awaitable[Worker]]


class Stack:
    """A localbase that can be stopped and started again on the same data dir and port."""

    def __init__(self, data_dir: Path, **options: Any) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.options = options
        self.runner: LocalbaseThread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def keys(self) -> Any:
        assert self.runner is not None
        return self.runner.keys

    def start(self) -> None:
        self.runner = LocalbaseThread(self.data_dir, "127.0.0.1", self.port, **self.options)
        self.runner.start(timeout=120)

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    async def restart(self, down_for: float = 0.0) -> None:
        await asyncio.to_thread(self.stop)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(self.start)

    async def restart_postgres(self, down_for: float = 0.0) -> None:
        assert self.runner is not None
        postgres = self.runner.postgres
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(postgres.start)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Own temp dir: pytest prunes old basetemps, which concurrent pytest runs can hit.
    stack_dir = tempfile.mkdtemp(prefix="tasklight-faults-")
    running = Stack(Path(stack_dir))
    running.start()
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(stack_dir, ignore_errors=True)


@pytest.fixture
async def proxy(stack: Stack) -> AsyncIterator[TcpProxy]:
    running = TcpProxy(stack.port)
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def session(stack: Stack, proxy: TcpProxy) -> AsyncIterator[SupabaseSession]:
    opened = await SupabaseSession.open(
        proxy.url, stack.keys.publishable_key, realtime=dict(FAST_REALTIME)
    )
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def start_worker(stack: Stack) -> AsyncIterator[WorkerStarter]:
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(**options: Any) -> Worker:
        options.setdefault("poll_seconds", 0.5)
        options.setdefault("lease_seconds", 5)
        worker = Worker(stack.url, stack.keys.secret_key, JobRegistry.with_builtins(), **options)
        running.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, _ in running:
        worker.stop()
    for _, task in running:
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=20)


@pytest.fixture(autouse=True)
async def empty_queue(stack: Stack) -> AsyncIterator[None]:
    """Cancel unfinished tasks earlier tests left, so workers only see this test's tasks."""
    await cancel_unfinished(stack)
    yield
    await cancel_unfinished(stack)


async def cancel_unfinished(stack: Stack) -> None:
    assert stack.runner is not None

    conn = await asyncpg.connect(**parse_dsn(stack.runner.postgres.dsn))
    try:
        await conn.execute(
            "update public.tasks set status = 'cancelled' where status in ('pending', 'processing')"
        )
    finally:
        await conn.close()


async def eventually(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def watch(
    session: SupabaseSession, task: Task, **options: Any
) -> tuple[TaskContext, list[TaskView]]:
    """A fast-timing TaskContext on `task`, live before returning, recording every view."""
    options.setdefault("timing", FAST_TIMING)
    options.setdefault("backoff", FAST_BACKOFF)
    context = TaskContext(session, **options)
    views: list[TaskView] = []
    context.add_listener(views.append)
    await context.set_task(task.id, initial=task)
    await eventually(lambda: context.view.connection == ConnectionState.LIVE, within=15)
    return context, views


async def final_row(stack: Stack, task_id: str) -> dict[str, Any]:
    """The task's row read straight from Postgres (the truth the view must end at)."""
    assert stack.runner is not None

    conn = await asyncpg.connect(**parse_dsn(stack.runner.postgres.dsn))
    try:
        row = await conn.fetchrow("select * from public.tasks where id = $1::uuid", task_id)
    finally:
        await conn.close()
    assert row is not None
    return dict(row)
