"""Workers die: SIGKILL mid-task (a real `main.py worker` process), reclaimed by another after
the lease; and a task whose workers keep dying fails after max_attempts with a clear reason."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from supabase import AsyncClient, acreate_client

from services.supabase_session import SupabaseSession
from tests.faults.conftest import Stack, eventually, final_row, watch
from tests.faults.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2


@pytest.fixture
async def spawn_worker(stack: Stack) -> AsyncIterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start `uv run main.py worker` processes with a short lease; all are killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "SUPABASE_URL": stack.url,
        "SUPABASE_SECRET_KEY": stack.keys.secret_key,
        "WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
        "WORKER_POLL_SECONDS": "0.3",
    }

    def spawn() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            ["uv", "run", "--no-sync", "main.py", "worker", "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
            start_new_session=True,  # its own process group: killed with everything it started
        )
        started.append(process)
        return process

    yield spawn
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait, 5)


@pytest.fixture
async def service(stack: Stack) -> AsyncIterator[AsyncClient]:
    client = await acreate_client(stack.url, stack.keys.secret_key)
    yield client
    await client.postgrest.aclose()


def worker_pid(worker_id: str | None) -> int:
    """`main.py worker` ids are `<host>-<pid>-<random>`."""
    assert worker_id
    return int(worker_id.rsplit("-", 2)[1])


async def test_a_killed_worker_s_task_is_reclaimed_and_completed_by_another(
    stack: Stack,
    proxy: TcpProxy,
    session: SupabaseSession,
    spawn_worker: Callable[[], subprocess.Popen[bytes]],
) -> None:
    task = await session.submit("demo", {"steps": 30, "step_seconds": 0.1})
    context, views = await watch(session, task)
    first = spawn_worker()
    await eventually(lambda: context.view.progress >= 10, within=30)
    assert context.task is not None
    victim = worker_pid(context.task.worker_id)
    assert victim != os.getpid()

    os.kill(victim, signal.SIGKILL)
    first.wait(5)
    spawn_worker()

    await eventually(lambda: context.view.is_terminal, within=30)
    row = await final_row(stack, task.id)
    assert row["status"] == "completed" and context.view.is_completed
    assert row["attempts"] == 2
    assert worker_pid(row["worker_id"]) != victim
    retry = [v for v in views if v.message.startswith("the previous worker stopped responding")]
    assert retry and retry[0].progress == 0
    await context.dispose()


async def test_a_task_whose_workers_keep_dying_fails_after_max_attempts(
    stack: Stack, proxy: TcpProxy, session: SupabaseSession, service: AsyncClient
) -> None:
    task = await session.submit("demo", {"steps": 3})
    context, _ = await watch(session, task)

    for attempt in range(1, 4):  # claim, then "die": never renew, let the lease run out
        claimed = await service.rpc("claim_task", {"p_worker_id": f"doomed-{attempt}",
                                                    "p_lease_seconds": 1}).execute()  # fmt: skip
        assert [row["id"] for row in claimed.data] == [task.id]
        assert claimed.data[0]["attempts"] == attempt
        await asyncio.sleep(1.1)
    nothing = await service.rpc("claim_task", {"p_worker_id": "next"}).execute()

    assert nothing.data == []
    await eventually(lambda: context.view.is_terminal, within=10)
    assert context.view.is_failed
    assert context.view.error == (
        "the worker stopped responding 3 times (attempt 3 of 3); giving up"
    )
    await context.dispose()
