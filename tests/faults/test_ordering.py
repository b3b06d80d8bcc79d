"""Races and misuse: a write right after SUBSCRIBED, a fetch older than an event, listeners
that raise, and 100 quick task switches (one channel left, nothing leaks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from supabase import AsyncClient, acreate_client

from services.models import ConnectionState, Task, TaskView
from services.supabase_session import SupabaseSession
from services.task_context import TaskContext
from tests.faults.conftest import FAST_BACKOFF, FAST_TIMING, WorkerStarter, eventually
from tests.faults.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
async def service(stack: Any) -> AsyncIterator[AsyncClient]:
    client = await acreate_client(stack.url, stack.keys.secret_key)
    yield client
    await client.postgrest.aclose()


async def set_message(service: AsyncClient, task_id: str, message: str) -> None:
    await service.table("tasks").update({"message": message}).eq("id", task_id).execute()


async def test_a_write_1_ms_after_subscribed_is_shown(
    session: SupabaseSession, service: AsyncClient
) -> None:
    task = await session.submit("demo", {"steps": 1})
    context = TaskContext(session, timing=FAST_TIMING, backoff=FAST_BACKOFF)
    writes: list[asyncio.Task[None]] = []

    def write() -> None:
        writes.append(asyncio.ensure_future(set_message(service, task.id, "written 1 ms later")))

    def on_view(view: TaskView) -> None:
        if view.connection == ConnectionState.LIVE and not writes:
            asyncio.get_running_loop().call_later(0.001, write)

    context.add_listener(on_view)
    await context.set_task(task.id, initial=task)

    await eventually(lambda: context.view.message == "written 1 ms later", within=10)
    await asyncio.gather(*writes)
    await context.dispose()


class HeldFetches:
    """The session, but a fetch's answer can be held back until after newer events."""

    def __init__(self, session: SupabaseSession) -> None:
        self.client = session.client
        self._session = session
        self.hold: asyncio.Event | None = None
        self.read: list[Task | None] = []

    async def fetch(self, task_id: str) -> Task | None:
        row = await self._session.fetch(task_id)
        self.read.append(row)
        if self.hold is not None:
            await self.hold.wait()
        return row


async def test_a_fetch_answered_after_a_newer_event_does_not_roll_back(
    session: SupabaseSession, service: AsyncClient
) -> None:
    task = await session.submit("demo", {"steps": 1})
    source = HeldFetches(session)
    context = TaskContext(source, timing=FAST_TIMING, backoff=FAST_BACKOFF)
    await context.set_task(task.id, initial=task)
    await eventually(lambda: context.view.connection == ConnectionState.LIVE, within=10)
    await set_message(service, task.id, "first")
    await eventually(lambda: context.view.message == "first")

    source.hold = asyncio.Event()
    reads = len(source.read)
    refreshing = asyncio.create_task(context.refresh())  # reads "first", answers later
    await eventually(lambda: len(source.read) > reads)
    await set_message(service, task.id, "second")
    await eventually(lambda: context.view.message == "second")
    source.hold.set()
    await refreshing

    assert source.read[-1] is not None and source.read[-1].message == "first"
    assert context.view.message == "second"
    await context.dispose()


async def test_listeners_that_raise_never_stop_the_updates(
    session: SupabaseSession, start_worker: WorkerStarter
) -> None:
    task = await session.submit("demo", {"steps": 8, "step_seconds": 0.1})
    context = TaskContext(session, timing=FAST_TIMING, backoff=FAST_BACKOFF)
    calls = {"view": 0, "notice": 0}
    seen: list[TaskView] = []

    def broken_view(view: TaskView) -> None:
        calls["view"] += 1
        raise RuntimeError("listener bug")

    def broken_notice(notice: Any) -> None:
        calls["notice"] += 1
        raise RuntimeError("notice bug")

    context.add_listener(broken_view)
    context.add_notice_listener(broken_notice)
    context.add_listener(seen.append)
    await context.set_task(task.id, initial=task)
    await start_worker()

    await eventually(lambda: context.view.is_completed, within=20)
    assert calls["view"] == len(seen) >= 5
    assert seen[-1].is_completed
    assert len({v.progress for v in seen}) >= 3  # events kept coming after the first raise
    await context.dispose()


def _name(task: asyncio.Task[Any]) -> str:
    return getattr(task.get_coro(), "__qualname__", "?")


def own_tasks() -> list[asyncio.Task[Any]]:
    """Every task except the proxy's and the realtime client's push timeouts.

    Removing a channel leaves its leave push waiting out the client's 10 s timeout (the
    socket closes with the last channel, so no reply is routed); those end by themselves.
    """
    skip = ("AsyncPush.", "TcpProxy.")  # the client's push timeouts, the test's proxy
    return [t for t in asyncio.all_tasks() if not _name(t).startswith(skip)]


async def test_100_switches_leave_one_channel_and_no_leaks(
    session: SupabaseSession, proxy: TcpProxy
) -> None:
    context = TaskContext(session, timing=FAST_TIMING, backoff=FAST_BACKOFF)
    counts: list[tuple[int, int]] = []
    last: Task | None = None
    for n in range(100):
        last = await session.submit("demo", {"steps": 1})
        await context.set_task(last.id, initial=last)
        if n in (9, 99):
            await eventually(lambda: context.view.connection == ConnectionState.LIVE, within=10)
            await asyncio.sleep(0.3)  # let removals and leaves settle
            counts.append((len(own_tasks()), proxy.open_connections))

    assert last is not None
    channels = session.client.get_channels()
    assert [c.topic for c in channels] == [context.channel.topic]
    assert last.id in context.channel.topic
    watchers = [t for t in own_tasks() if _name(t) == "TaskContext._watch"]
    assert len(watchers) == 1
    (tasks_at_10, sockets_at_10), (tasks_at_100, sockets_at_100) = counts
    assert tasks_at_100 <= tasks_at_10 + 1, counts
    # One websocket plus the HTTP keep-alive pool, which is sized by concurrent requests.
    assert sockets_at_100 <= max(sockets_at_10 + 2, 8), counts
    await context.dispose()
    await eventually(lambda: session.client.get_channels() == [], within=5)
