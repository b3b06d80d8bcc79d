"""What the page tells the person: blocked inputs, one task per click, loading, waiting,
failure look, human toasts, catching up after a reconnect (simulated user, real localbase)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nicegui.testing.user import User
from nicegui.testing.user_interaction import UserInteraction
from nicegui.testing.user_simulation import user_simulation

from tests.ui.conftest import MAIN_FILE, wait_until
from tests.ui.test_landing import _one, _ready, _status
from tests.ui.test_surfaces import _rows
from ui.controller import VISIBLE_EVENT
from ui.viewers import Viewer

pytestmark = pytest.mark.integration


def _text(user: User, marker: str) -> str:
    return _one(user, marker).text  # type: ignore[attr-defined]


async def _quick(user: User, steps: int = 1) -> None:
    await user.open("/")
    await _ready(user)
    _one(user, "steps").value = str(steps)  # type: ignore[attr-defined]
    _one(user, "step_seconds").value = "0"  # type: ignore[attr-defined]


async def test_ten_rapid_clicks_on_submit_create_one_task(user: User) -> None:
    await _quick(user)

    for _ in range(10):
        user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "completed", 30, "the task to complete")
    await wait_until(lambda: len(_rows(user)) >= 1, 10, "the history to list the task")
    await asyncio.sleep(2)  # any extra submission would reach the history by now
    assert len(_rows(user)) == 1


@pytest.mark.parametrize(
    ("field", "typed", "error"),
    [
        ("steps", "0", "must be 1 or more"),
        ("steps", "1001", "must be 1000 or less"),
        # Too long for int(): the range error, not Python's int_max_str_digits message.
        ("steps", "9" * 5000, "must be 1000 or less"),
        ("steps", "-" + "9" * 5000, "must be 1 or more"),
        ("step_seconds", "9" * 5000, "must be 60 or less"),
        ("fail_at_step", "9" * 5000, "must be 1000 or less"),
        ("steps", "1e23", "enter a whole number"),
        ("steps", "2.5", "enter a whole number"),
        ("steps", "", "enter a number"),
        ("step_seconds", "1e308", "must be 60 or less"),
        ("step_seconds", "NaN", "enter a number"),
        ("step_seconds", "abc", "enter a number"),
        ("fail_at_step", "0", "must be 1 or more"),
    ],
)
async def test_a_wrong_number_is_marked_kept_as_typed_and_blocks_submit(
    user: User, field: str, typed: str, error: str
) -> None:
    await user.open("/")
    await _ready(user)
    element = _one(user, field)
    element.value = typed  # type: ignore[attr-defined]

    user.find(marker="submit").click()
    await asyncio.sleep(0.5)

    assert element.error == error  # type: ignore[attr-defined]
    assert element.value == typed  # type: ignore[attr-defined]
    assert _status(user) == "no task yet"
    assert any(m.startswith("Not submitted:") and error in m for m in user.notify.messages)
    assert not any("invalid parameters" in m for m in user.notify.messages)


async def test_a_fail_step_after_the_last_step_is_explained_at_the_form(user: User) -> None:
    await user.open("/")
    await _ready(user)
    _one(user, "steps").value = "3"  # type: ignore[attr-defined]
    _one(user, "fail_at_step").value = "4"  # type: ignore[attr-defined]

    user.find(marker="submit").click()

    await user.should_see("Fail at step (4) is after the last step", retries=20)
    assert _one(user, "fail_at_step").error  # type: ignore[attr-defined]
    assert _status(user) == "no task yet"


async def test_a_completed_task_says_loading_until_its_result_arrives(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    release.set()
    original = Viewer.result

    async def held_result(self: Viewer, result_id: str) -> dict[str, Any] | None:
        await release.wait()
        return await original(self, result_id)

    monkeypatch.setattr(Viewer, "result", held_result)
    await _quick(user)
    user.find(marker="submit").click()
    await user.should_see("1 step done", retries=100)
    release.clear()
    first = _text(user, "task-id")

    user.find(marker="submit").click()
    await wait_until(lambda: _text(user, "task-id") != first, 10, "the second task")
    await wait_until(lambda: _status(user) == "completed", 30, "the second task to complete")

    await user.should_see(marker="result-loading")
    await user.should_see("loading result…")
    await user.should_not_see("1 step done")
    release.set()
    await user.should_see("1 step done", retries=100)
    await user.should_not_see(marker="result-loading")


async def test_a_sampled_table_says_how_many_rows_it_shows(user: User) -> None:
    await _quick(user, steps=25)

    user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "completed", 30, "the task to complete")
    await user.should_see("first 20 of 25 rows", retries=100)
    await user.should_not_see("Rows total")


async def test_a_failed_task_has_a_red_bar_and_no_contradicting_message(user: User) -> None:
    await user.open("/")
    await _ready(user)
    _one(user, "step_seconds").value = "0.1"  # type: ignore[attr-defined]
    _one(user, "fail_at_step").value = "3"  # type: ignore[attr-defined]

    user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "failed", 30, "the task to fail")
    await user.should_see("step 3 of 5 failed on purpose", retries=20)
    assert _one(user, "progress").text_color == "negative"  # type: ignore[attr-defined]
    assert "step 2 of 5" not in _text(user, "message")


@pytest.fixture
async def user_without_worker(
    project_env: None, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[User]:
    """The app as `run` builds it against a project with no secret key: no worker here."""
    monkeypatch.delenv("SUPABASE_SECRET_KEY")
    async with user_simulation(main_file=MAIN_FILE) as simulated:
        yield simulated


async def test_a_pending_task_without_a_worker_says_it_waits_for_one(
    user_without_worker: User,
) -> None:
    user = user_without_worker
    await _quick(user)

    user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "pending", 10, "the task to be pending")
    await wait_until(
        lambda: "waiting for a worker to pick it up" in _text(user, "message"),
        5,
        "the waiting message",
    )
    user.find(marker="cancel").click()  # leave no pending task for other tests' workers
    await wait_until(lambda: _status(user) == "cancelled", 10, "the task to be cancelled")


async def test_a_reconnect_and_a_visible_tab_refresh_the_view(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = Viewer.refresh

    async def counted(self: Viewer) -> None:
        calls.append("refresh")
        await original(self)

    monkeypatch.setattr(Viewer, "refresh", counted)
    await user.open("/")
    await _ready(user)
    assert calls == []
    client = user.client
    assert client is not None

    for handler in client.connect_handlers:  # what NiceGUI runs on a socket reconnect
        client.safe_invoke(handler)
    await wait_until(lambda: len(calls) == 1, 5, "a refresh after the reconnect")

    UserInteraction(user, {client.layout}, None).trigger(VISIBLE_EVENT)
    await wait_until(lambda: len(calls) == 2, 5, "a refresh when the tab is visible again")
    assert VISIBLE_EVENT in str(client._body_html)  # the page's script emits it
