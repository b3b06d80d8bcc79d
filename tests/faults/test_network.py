"""The viewer's network fails mid-task: reset, a longer outage, a silent (half-open) socket.

Only the viewer goes through the proxy; the worker finishes the task meanwhile, so the
context must find the final state on its own once the network is back.
"""

from __future__ import annotations

import asyncio

import pytest

from services.models import ConnectionState
from services.supabase_session import SupabaseSession
from tests.faults.conftest import Stack, WorkerStarter, eventually, final_row, watch
from tests.faults.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_a_one_second_outage_mid_task_ends_at_the_final_state(
    stack: Stack, proxy: TcpProxy, session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    task = await session.submit("demo", {"steps": 20, "step_seconds": 0.1})
    context, views = await watch(session, task)
    await start_worker()
    await eventually(lambda: context.view.progress > 0)

    proxy.sever(refuse=True)
    await asyncio.sleep(1.0)
    proxy.restore()

    await eventually(lambda: context.view.is_completed, within=20)
    assert context.view.progress == 100
    assert (await final_row(stack, task.id))["status"] == "completed"
    states = [v.connection for v in views]
    assert ConnectionState.ERROR in states
    assert len(session.client.get_channels()) <= 1
    await eventually(lambda: session.client.get_channels() == [], within=5)
    await context.dispose()


async def test_an_outage_longer_than_the_client_retries_falls_back_then_recovers(
    stack: Stack, proxy: TcpProxy, session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    """The client gives up after its retries (~1.5 s here); the context goes on forever."""
    # Long enough (12 s) to still be running after the outage on a loaded machine.
    task = await session.submit("demo", {"steps": 120, "step_seconds": 0.1})
    context, views = await watch(session, task)
    await start_worker()
    await eventually(lambda: context.view.progress > 0)

    proxy.sever(refuse=True)
    await eventually(lambda: context.view.connection != ConnectionState.LIVE, within=5)
    await asyncio.sleep(5.0)  # several context retries and fallback fetches fail meanwhile
    refused_during_outage = proxy.accepted
    assert not context.view.is_completed
    proxy.restore()

    # The task is still running: the channel comes back and follows it to the end.
    await eventually(lambda: context.view.connection == ConnectionState.LIVE, within=15)
    await eventually(lambda: context.view.is_completed, within=30)
    assert refused_during_outage >= 4
    assert (await final_row(stack, task.id))["status"] == "completed"
    errors = [v for v in views if v.connection == ConnectionState.ERROR]
    assert errors and errors[0].error
    await context.dispose()


async def test_the_task_finishing_during_an_outage_is_shown_by_the_fallback_fetch(
    stack: Stack, proxy: TcpProxy, session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    task = await session.submit("demo", {"steps": 10, "step_seconds": 0.1})
    context, _ = await watch(session, task)
    await start_worker()
    await eventually(lambda: context.view.progress > 0)

    proxy.sever(refuse=True)
    for _ in range(100):
        if (await final_row(stack, task.id))["status"] == "completed":
            break
        await asyncio.sleep(0.1)
    assert not context.view.is_completed
    proxy.restore()

    await eventually(lambda: context.view.is_completed, within=10)
    await eventually(lambda: session.client.get_channels() == [], within=5)
    await context.dispose()


async def test_a_silent_socket_is_detected_by_ping_and_replaced(
    stack: Stack, proxy: TcpProxy, session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    """Bytes stop flowing but no connection closes (half-open): the client alone would not
    notice for ~40 s (websockets keepalive); the context's ping finds it within ~2 s."""
    task = await session.submit("demo", {"steps": 40, "step_seconds": 0.1})
    context, views = await watch(session, task)
    await start_worker()
    await eventually(lambda: context.view.progress > 0)

    proxy.pause()
    paused_at = asyncio.get_running_loop().time()
    await eventually(lambda: context.view.connection == ConnectionState.ERROR, within=5)
    detected_after = asyncio.get_running_loop().time() - paused_at
    proxy.sever()  # the stale connections stay stuck; drop them, as a real path change would
    proxy.restore()

    await eventually(lambda: context.view.is_completed, within=20)
    assert detected_after < 4.0
    assert any("answering" in (v.error or "") or "closed" in (v.error or "") for v in views)
    await context.dispose()
