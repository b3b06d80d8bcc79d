"""The server side goes away mid-task: localbase restarted (same data dir and port), and
Postgres alone restarted under a running localbase. Worker and viewer both recover."""

from __future__ import annotations

import pytest

from services.supabase_session import SupabaseSession
from tests.faults.conftest import Stack, WorkerStarter, eventually, final_row, watch
from tests.faults.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_localbase_restarted_mid_task(
    stack: Stack, proxy: TcpProxy, session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    task = await session.submit("demo", {"steps": 30, "step_seconds": 0.1})
    context, _ = await watch(session, task)
    await start_worker()
    await eventually(lambda: context.view.progress > 0)

    await stack.restart()

    await eventually(lambda: context.view.is_terminal, within=45)
    row = await final_row(stack, task.id)
    assert row["status"] == "completed"
    assert context.view.is_completed and context.view.progress == 100
    assert context.view.result_id == str(row["result_id"])
    await context.dispose()


async def test_postgres_restarted_mid_task(
    stack: Stack, proxy: TcpProxy, session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    task = await session.submit("demo", {"steps": 30, "step_seconds": 0.1})
    context, _ = await watch(session, task)
    await start_worker()
    await eventually(lambda: context.view.progress > 0)

    await stack.restart_postgres(down_for=0.5)

    await eventually(lambda: context.view.is_terminal, within=60)
    row = await final_row(stack, task.id)
    assert row["status"] == "completed"
    assert context.view.is_completed and context.view.progress == 100
    await context.dispose()
