"""TaskState: how a TaskView snapshot is shown (no page, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.models import ConnectionState, Task, TaskStatus, TaskView
from ui.design import CONNECTION_LOOKS, STATUS_LOOKS
from ui.state import PENDING_HINT_SECONDS, WAITING_FOR_WORKER, TaskState


def _view(connection: ConnectionState = ConnectionState.LIVE, error: str | None = None,
          **row: object) -> TaskView:  # fmt: skip
    task = Task.model_validate({"id": "t1", "kind": "demo", **row})
    return TaskView.build("t1", task, connection, error)


def test_a_processing_task_shows_its_word_colour_progress_and_message() -> None:
    state = TaskState()

    state.apply(_view(status="processing", progress=40, message="step 2 of 5"))

    assert (state.status, state.status_color) == ("processing", STATUS_LOOKS["processing"].color)
    assert state.progress == 0.4
    assert state.progress_text == "40 %"
    assert state.message == "step 2 of 5"
    assert state.connection_icon == CONNECTION_LOOKS["live"].icon


def test_a_failed_task_shows_its_reason_and_no_connection_problem() -> None:
    state = TaskState()

    state.apply(_view(ConnectionState.IDLE, status="failed", error_message="step 2 failed"))

    assert state.is_failed
    assert state.error == "step 2 failed"
    assert state.connection_error == ""


def test_a_connection_error_is_not_shown_as_a_task_failure() -> None:
    state = TaskState()

    state.apply(_view(ConnectionState.ERROR, "socket closed", status=TaskStatus.PROCESSING))

    assert not state.is_failed
    assert state.error == ""
    assert state.connection_error == "socket closed"
    assert state.connection_color == CONNECTION_LOOKS["error"].color


def test_no_task_yet_is_shown_when_the_view_is_empty() -> None:
    state = TaskState()
    state.apply(_view(status="completed", progress=100))

    state.apply(TaskView())

    assert (state.status, state.has_task, state.progress) == ("no task yet", False, 0.0)


def _pending(created_seconds_ago: float) -> tuple[TaskView, Task]:
    created = datetime.now(UTC) - timedelta(seconds=created_seconds_ago)
    task = Task.model_validate({"id": "t1", "kind": "demo", "status": "pending",
                                "created_at": created})  # fmt: skip
    return TaskView.build("t1", task, ConnectionState.LIVE), task


def test_a_pending_task_says_it_waits_for_a_worker_after_a_few_seconds() -> None:
    state = TaskState()
    view, task = _pending(1)
    state.apply(view)
    state.apply_row(task)
    assert state.message == ""

    view, task = _pending(PENDING_HINT_SECONDS + 1)
    state.apply(view)
    state.apply_row(task)
    assert state.message == WAITING_FOR_WORKER


def test_without_a_worker_in_the_app_a_pending_task_says_so_at_once() -> None:
    state = TaskState(local_worker=False)

    state.apply(_pending(0)[0])

    assert state.message.startswith(WAITING_FOR_WORKER)
    assert "main.py worker" in state.message


def test_a_failed_task_has_a_red_bar_and_drops_its_last_progress_message() -> None:
    state = TaskState()
    state.apply(_view(status="processing", progress=40, message="step 2 of 5"))
    assert state.progress_color == "primary"

    state.apply(_view(status="failed", progress=40, message="step 2 of 5",
                      error_message="step 3 of 5 failed on purpose"))  # fmt: skip

    assert state.progress_color == "negative"
    assert state.message == ""
    assert state.error == "step 3 of 5 failed on purpose"
