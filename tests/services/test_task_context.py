"""TaskContext against a fake realtime client: ordering, merging, channel hygiene, errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from services.models import ConnectionState, Task, TaskStatus, TaskView
from services.task_context import Backoff, Notice, TaskContext
from tests.services.fakes import FakeSource, row

FAST = Backoff(base=0.01, cap=0.04)


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
async def context(source: FakeSource) -> AsyncIterator[TaskContext]:
    ctx = TaskContext(source, backoff=FAST)
    yield ctx
    await ctx.dispose()


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_the_row_is_fetched_only_after_the_subscription_is_live(
    source: FakeSource, context: TaskContext
) -> None:
    source.rows["a"] = row("a", 1, status="processing", progress=40)

    await context.set_task("a")
    await settle()

    assert source.fetches == []
    assert context.view.connection == ConnectionState.CONNECTING
    channel = source.client.live[0]
    assert channel.bindings == [
        {"event": "UPDATE", "table": "tasks", "schema": "public", "filter": "id=eq.a"}
    ]

    channel.emit_state("SUBSCRIBED")
    await eventually(lambda: context.view.progress == 40)

    assert source.client.log == [f"subscribe {channel.topic}", "fetch a"]
    assert context.view.connection == ConnectionState.LIVE
    assert context.view.is_processing and context.view.is_active


async def test_the_binding_going_live_triggers_a_catch_up_fetch(
    source: FakeSource, context: TaskContext
) -> None:
    source.rows["a"] = row("a", 1)
    await context.set_task("a")
    channel = source.client.live[0]
    channel.emit_state("SUBSCRIBED")
    await eventually(lambda: context.view.status == TaskStatus.PENDING)

    source.rows["a"] = row("a", 2, status="processing", progress=10)
    channel.emit_system_ok()

    await eventually(lambda: context.view.progress == 10)
    assert source.fetches == ["a", "a"]


async def test_a_fetch_older_than_an_event_is_ignored(
    source: FakeSource, context: TaskContext
) -> None:
    source.rows["a"] = row("a", 1, status="pending")
    source.fetch_gate = asyncio.Event()
    await context.set_task("a")
    channel = source.client.live[0]
    channel.emit_state("SUBSCRIBED")
    await eventually(lambda: source.fetches == ["a"])

    channel.emit_update(row("a", 3, status="processing", progress=60, message="step 3 of 5"))
    source.fetch_gate.set()
    await settle()

    assert context.view.status == TaskStatus.PROCESSING
    assert context.view.progress == 60
    assert context.view.message == "step 3 of 5"


async def test_an_event_older_than_the_shown_row_is_ignored(
    source: FakeSource, context: TaskContext
) -> None:
    source.rows["a"] = row("a", 5, status="processing", progress=80)
    await context.set_task("a")
    channel = source.client.live[0]
    channel.emit_state("SUBSCRIBED")
    await eventually(lambda: context.view.progress == 80)

    channel.emit_update(row("a", 4, status="processing", progress=60))

    assert context.view.progress == 80


async def test_a_partial_event_keeps_the_columns_it_does_not_carry(
    source: FakeSource, context: TaskContext
) -> None:
    source.rows["a"] = row("a", 1, params={"steps": 7})
    await context.set_task("a")
    channel = source.client.live[0]
    channel.emit_state("SUBSCRIBED")
    await eventually(lambda: context.task is not None)

    partial = row("a", 2, status="processing", progress=20)
    del partial["params"]
    channel.emit_update(partial)

    assert context.task is not None
    assert context.task.params == {"steps": 7}
    assert context.view.progress == 20


async def test_the_submitted_row_is_shown_before_anything_arrives(
    source: FakeSource, context: TaskContext
) -> None:
    initial = Task.model_validate(row("a", 1))

    await context.set_task("a", initial=initial)

    assert context.view.task_id == "a"
    assert context.view.is_pending
    assert context.view.connection == ConnectionState.CONNECTING


async def test_switching_tasks_keeps_exactly_one_channel(
    source: FakeSource, context: TaskContext
) -> None:
    for task_id in ("a", "b", "c"):
        source.rows[task_id] = row(task_id, 1)

    await context.set_task("a")
    first = source.client.live[0]
    first.emit_state("SUBSCRIBED")
    await context.set_task("b")
    await context.set_task("c")
    await settle()

    assert len(source.client.live) == 1
    assert source.client.live[0] is source.client.created[-1]
    assert [c.removed for c in source.client.created] == [True, True, False]
    assert context.view.task_id == "c"

    first.emit_update(row("a", 9, status="completed", progress=100))
    assert context.view.task_id == "c"
    assert context.view.status is None


async def test_a_terminal_status_removes_the_channel(
    source: FakeSource, context: TaskContext
) -> None:
    source.rows["a"] = row("a", 1, status="processing")
    await context.set_task("a")
    channel = source.client.live[0]
    channel.emit_state("SUBSCRIBED")
    await eventually(lambda: context.view.is_processing)

    channel.emit_update(row("a", 2, status="completed", progress=100, result_id="r1"))
    await eventually(lambda: channel.removed)

    assert source.client.live == []
    assert context.view.is_completed and not context.view.is_active
    assert context.view.result_id == "r1"
    assert context.view.connection == ConnectionState.IDLE


async def test_a_failed_task_carries_its_reason(source: FakeSource, context: TaskContext) -> None:
    source.rows["a"] = row("a", 1, status="failed", error_message="step 2 of 5 failed")
    await context.set_task("a")
    source.client.live[0].emit_state("SUBSCRIBED")

    await eventually(lambda: context.view.is_failed)

    assert context.view.error == "step 2 of 5 failed"
    await eventually(lambda: source.client.live == [])


async def test_dispose_removes_the_channel_and_silences_listeners(source: FakeSource) -> None:
    context = TaskContext(source, backoff=FAST)
    views: list[TaskView] = []
    context.add_listener(views.append)
    source.rows["a"] = row("a", 1)
    await context.set_task("a")
    channel = source.client.live[0]

    await context.dispose()
    seen = len(views)
    channel.emit_state("SUBSCRIBED")
    channel.emit_update(row("a", 2, status="processing"))
    await settle()

    assert channel.removed and source.client.live == []
    assert len(views) == seen
    assert source.fetches == []


@pytest.mark.parametrize("state", ["CHANNEL_ERROR", "TIMED_OUT", "CLOSED"])
async def test_an_error_shows_an_error_state_then_resubscribes_and_refetches(
    source: FakeSource, context: TaskContext, state: str
) -> None:
    notices: list[Notice] = []
    context.add_notice_listener(notices.append)
    source.rows["a"] = row("a", 1, status="processing", progress=10)
    await context.set_task("a")
    first = source.client.live[0]
    first.emit_state("SUBSCRIBED")
    await eventually(lambda: context.view.progress == 10)

    first.emit_state(state, Exception("socket closed") if state == "CHANNEL_ERROR" else None)

    assert context.view.connection == ConnectionState.ERROR
    assert context.view.error
    assert [n.level for n in notices] == ["warning"]

    source.rows["a"] = row("a", 2, status="processing", progress=70)
    await eventually(lambda: len(source.client.created) == 2)
    second = source.client.created[1]
    await eventually(lambda: first.removed)
    assert source.client.live == [second]
    assert context.view.connection == ConnectionState.RECONNECTING

    second.emit_state("SUBSCRIBED")
    await eventually(lambda: context.view.progress == 70)
    assert context.view.connection == ConnectionState.LIVE
    assert context.view.error is None
    assert [n.level for n in notices] == ["warning", "positive"]


async def test_a_rejoin_by_the_client_cancels_the_pending_resubscribe(
    source: FakeSource,
) -> None:
    context = TaskContext(source, backoff=Backoff(base=0.2, cap=0.2))
    source.rows["a"] = row("a", 1)
    await context.set_task("a")
    channel = source.client.live[0]
    channel.emit_state("SUBSCRIBED")

    channel.emit_state("CHANNEL_ERROR", Exception("phx_error"))
    channel.emit_state("SUBSCRIBED")
    await asyncio.sleep(0.3)

    assert source.client.created == [channel]
    assert context.view.connection == ConnectionState.LIVE
    await context.dispose()


async def test_repeated_failures_back_off_and_toast_once(source: FakeSource) -> None:
    context = TaskContext(source, backoff=Backoff(base=0.02, cap=0.05))
    notices: list[Notice] = []
    context.add_notice_listener(notices.append)
    await context.set_task("a")

    for _ in range(3):
        channel = source.client.created[-1]
        count = len(source.client.created)
        channel.emit_state("TIMED_OUT")
        await eventually(lambda count=count: len(source.client.created) == count + 1)

    assert len(source.client.live) == 1
    assert len(notices) == 1
    await context.dispose()


async def test_a_stale_switch_never_leaves_two_channels_or_shows_the_old_task(
    source: FakeSource, context: TaskContext
) -> None:
    source.rows["a"] = row("a", 1, status="processing", progress=50)
    source.rows["b"] = row("b", 1)
    source.client.hold_joins = True
    source.fetch_gate = asyncio.Event()
    views: list[TaskView] = []
    context.add_listener(views.append)

    first_switch = asyncio.create_task(context.set_task("a"))
    await eventually(lambda: len(source.client.created) == 1)
    old = source.client.created[0]
    second_switch = asyncio.create_task(context.set_task("b"))
    old.emit_state("SUBSCRIBED")  # the old join answers just as the user submits again
    await eventually(lambda: len(source.client.created) == 2)
    new = source.client.created[1]
    new.join_released.set()
    await asyncio.gather(first_switch, second_switch)
    new.emit_state("SUBSCRIBED")
    source.fetch_gate.set()  # the old task's fetch returns late
    await eventually(lambda: context.view.status == TaskStatus.PENDING)
    await settle()

    assert old.removed
    assert source.client.live == [new]
    switched = next(i for i, view in enumerate(views) if view.task_id == "b")
    assert all(view.task_id == "b" for view in views[switched:])
    assert context.view.progress == 0


async def test_rapid_switches_leave_only_the_last_task_subscribed(
    source: FakeSource, context: TaskContext
) -> None:
    await context.set_task("x")
    source.client.live[0].emit_state("SUBSCRIBED")

    await asyncio.gather(*(context.set_task(task_id) for task_id in ("a", "b", "c")))
    await settle()

    assert [c.bindings[0]["filter"] for c in source.client.live] == ["id=eq.c"]
    assert all(c.removed for c in source.client.created[:-1])
    assert context.view.task_id == "c"


async def test_a_failing_listener_is_logged_and_others_still_run(
    source: FakeSource, context: TaskContext, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(view: TaskView) -> None:
        raise RuntimeError("listener bug")

    views: list[TaskView] = []
    context.add_listener(broken)
    context.add_listener(views.append)

    with caplog.at_level(logging.ERROR):
        await context.set_task("a")

    assert views and views[-1].task_id == "a"
    assert "task view listener failed" in caplog.text


async def test_clearing_the_task_removes_the_channel(
    source: FakeSource, context: TaskContext
) -> None:
    await context.set_task("a")

    await context.set_task(None)

    assert source.client.live == []
    assert context.view == TaskView()
