"""The landing page through NiceGUI's simulated user, against a real localbase and worker."""

from __future__ import annotations

import pytest
from nicegui import ui
from nicegui.testing.user import User

from tests.ui.conftest import wait_until

pytestmark = pytest.mark.integration


def _one(user: User, marker: str) -> ui.element:
    elements = user.find(marker=marker).elements
    assert len(elements) == 1, f"expected one element marked {marker!r}, found {len(elements)}"
    return next(iter(elements))


def _status(user: User) -> str:
    return _one(user, "status").text  # type: ignore[attr-defined]


async def _ready(user: User) -> None:
    """Wait until the tab is signed in, which enables the Submit button."""
    button = _one(user, "submit")
    await wait_until(lambda: button.enabled, 20, "the submit button to be enabled")


async def test_landing_shows_the_demo_form_with_its_defaults(user: User) -> None:
    await user.open("/")

    await user.should_see("New task")

    assert _one(user, "kind").value == "demo"  # type: ignore[attr-defined]
    assert _one(user, "steps").value == "5"  # type: ignore[attr-defined]
    assert _one(user, "step_seconds").value == "1"  # type: ignore[attr-defined]
    assert _one(user, "fail_at_step").value == ""  # type: ignore[attr-defined]
    assert _status(user) == "no task yet"
    await user.should_see("Submit")


async def test_one_click_on_submit_runs_the_default_demo_to_completed(user: User) -> None:
    await user.open("/")
    await _ready(user)

    user.find(marker="submit").click()

    await wait_until(
        lambda: _status(user) == "pending" or _status(user) == "processing",
        10,
        "the task to be submitted",
    )
    seen: set[str] = set()

    def completed() -> bool:
        seen.add(_status(user))
        return _status(user) == "completed"

    await wait_until(completed, 30, "the task to complete")
    assert "processing" in seen
    await user.should_see("5 steps done", retries=50)
    await user.should_see("Sum of squares")
    await user.should_not_see(marker="failure")


async def test_a_failing_demo_shows_its_reason(user: User) -> None:
    await user.open("/")
    await _ready(user)
    _one(user, "step_seconds").value = 0.1  # type: ignore[attr-defined]
    _one(user, "fail_at_step").value = 2  # type: ignore[attr-defined]

    user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "failed", 30, "the task to fail")
    await user.should_see(marker="failure")
    await user.should_see("step 2 of 5 failed on purpose", retries=20)
    await user.should_not_see(marker="result")


async def test_an_invalid_field_is_marked_and_nothing_is_submitted(user: User) -> None:
    await user.open("/")
    await _ready(user)
    steps = _one(user, "steps")
    steps.value = 0  # type: ignore[attr-defined]

    user.find(marker="submit").click()

    await user.should_see("Not submitted: Steps: must be 1 or more")
    assert steps.error == "must be 1 or more"  # type: ignore[attr-defined]
    assert _status(user) == "no task yet"


async def test_a_fail_step_after_the_last_step_is_refused_with_the_reason(user: User) -> None:
    await user.open("/")
    await _ready(user)
    _one(user, "steps").value = 3  # type: ignore[attr-defined]
    _one(user, "fail_at_step").value = 4  # type: ignore[attr-defined]

    user.find(marker="submit").click()

    await user.should_see("Fail at step (4) is after the last step", retries=20)
    assert _status(user) == "no task yet"


async def test_a_second_submission_becomes_the_active_task(user: User) -> None:
    await user.open("/")
    await _ready(user)
    _one(user, "step_seconds").value = 0  # type: ignore[attr-defined]
    _one(user, "steps").value = 1  # type: ignore[attr-defined]
    user.find(marker="submit").click()
    await wait_until(lambda: _status(user) == "completed", 30, "the first task to complete")
    first = _one(user, "task-id").text  # type: ignore[attr-defined]

    _one(user, "step_seconds").value = 0.1  # type: ignore[attr-defined]
    _one(user, "fail_at_step").value = 1  # type: ignore[attr-defined]
    user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "failed", 30, "the second task to fail")
    assert _one(user, "task-id").text != first  # type: ignore[attr-defined]
    await user.should_not_see(marker="result")


async def test_a_reload_shows_the_same_users_task(user: User) -> None:
    await user.open("/")
    await _ready(user)
    _one(user, "steps").value = 1  # type: ignore[attr-defined]
    _one(user, "step_seconds").value = 0  # type: ignore[attr-defined]
    user.find(marker="submit").click()
    await wait_until(lambda: _status(user) == "completed", 30, "the task to complete")
    task_label = _one(user, "task-id").text  # type: ignore[attr-defined]

    await user.open("/")

    await _ready(user)
    await wait_until(lambda: _status(user) == "completed", 10, "the task after the reload")
    assert _one(user, "task-id").text == task_label  # type: ignore[attr-defined]
    await user.should_see("1 step done", retries=50)
