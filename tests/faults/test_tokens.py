"""Access tokens that live three seconds while a task runs for several lifetimes."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.jobs import JobRegistry
from services.models import ConnectionState, Notice
from services.supabase_session import SupabaseSession
from services.worker import Worker
from tests.faults.conftest import FAST_REALTIME, Stack, eventually, watch
from tests.faults.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

LIFETIME = 3


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Overrides the shared stack: one whose user tokens expire after LIFETIME seconds."""
    # Own temp dir: pytest prunes old basetemps, which concurrent pytest runs can hit.
    stack_dir = tempfile.mkdtemp(prefix="tasklight-tokens-")
    running = Stack(Path(stack_dir), access_token_lifetime=LIFETIME)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(stack_dir, ignore_errors=True)


@pytest.fixture
async def short_session(stack: Stack, proxy: TcpProxy) -> AsyncIterator[SupabaseSession]:
    opened = await SupabaseSession.open(
        proxy.url, stack.keys.publishable_key, realtime=dict(FAST_REALTIME)
    )
    yield opened
    await opened.close()


async def test_a_task_outliving_several_tokens_stays_live_to_the_end(
    stack: Stack, short_session: SupabaseSession
) -> None:
    task = await short_session.submit("demo", {"steps": 40, "step_seconds": 0.25})
    context, views = await watch(short_session, task)
    worker = Worker(stack.url, stack.keys.secret_key, JobRegistry.with_builtins(),
                    poll_seconds=0.5, lease_seconds=5)  # fmt: skip
    running = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: context.view.is_terminal, within=40)
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, 10)

    assert context.view.is_completed and context.view.progress == 100
    assert short_session.refreshes >= 3  # 10 s of work, a new token every ~2.4 s
    # The channel never lost its authorization: each new token reached it before expiry.
    assert ConnectionState.ERROR not in [v.connection for v in views]
    assert await short_session.fetch(task.id) is not None  # REST works with the current token
    await context.dispose()


async def test_a_failed_refresh_is_retried_and_reported(
    stack: Stack, proxy: TcpProxy, short_session: SupabaseSession
) -> None:
    notices: list[Notice] = []
    short_session.add_notice_listener(notices.append)
    task = await short_session.submit("demo", {"steps": 1})
    before = short_session.refreshes

    proxy.sever(refuse=True)
    await eventually(lambda: any("could not renew" in n.text for n in notices), within=10)
    proxy.restore()

    await eventually(lambda: short_session.refreshes > before, within=15)
    await eventually(lambda: any(n.text == "sign-in renewed" for n in notices), within=5)
    assert await short_session.fetch(task.id) is not None
