"""TaskState: how a TaskView snapshot is shown (no page, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.models import ConnectionState, Task, TaskStatus, TaskView
from ui.design import CONNECTION_LOOKS, STATUS_LOOKS
from ui.format import compact_label, compact_number
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


def _running(now: datetime, **row: object) -> TaskState:
    fields = {"status": "processing", "progress": 40, "message": "step 2 of 5", "attempts": 1,
              "started_at": now - timedelta(seconds=20), "updated_at": now - timedelta(seconds=5),
              "lease_expires_at": now + timedelta(seconds=25), **row}  # fmt: skip
    task = Task.model_validate({"id": "t1", "kind": "demo", **fields})
    state = TaskState()
    state.apply(TaskView.build("t1", task, ConnectionState.LIVE))
    state.apply_row(task, now)
    return state


def test_a_live_processing_task_shows_elapsed_time_and_an_estimate() -> None:
    now = datetime.now(UTC)

    state = _running(now)

    assert not state.stalled
    assert state.timing_text == "elapsed 20 s · about 30 s left"


def test_a_task_whose_lease_ran_out_says_the_worker_may_have_stopped_and_no_eta() -> None:
    now = datetime.now(UTC)
    state = _running(now, updated_at=now - timedelta(seconds=45),
                     lease_expires_at=now - timedelta(seconds=15))  # fmt: skip

    assert state.stalled
    assert state.timing_text == (
        "no progress for 45 s — the worker may have stopped; it will be retried"
    )
    assert "left" not in state.timing_text

    state.tick(now + timedelta(seconds=10))
    assert state.timing_text.startswith("no progress for 55 s")


def test_a_stalled_last_attempt_says_it_will_fail() -> None:
    now = datetime.now(UTC)
    state = _running(now, attempts=3, lease_expires_at=now - timedelta(seconds=1))

    assert state.timing_text.endswith("it will be marked failed (no attempts left)")


def test_a_retried_task_times_its_current_attempt() -> None:
    now = datetime.now(UTC)
    state = _running(now, attempts=2, created_at=now - timedelta(seconds=90),
                     started_at=now - timedelta(seconds=4), progress=50)  # fmt: skip
    assert state.timing_text == "elapsed 4 s · about 4 s left"
    assert state.attempts_text == "attempt 2 of 3"

    done = Task.model_validate(
        {"id": "t1", "kind": "demo", "status": "completed", "progress": 100, "attempts": 2,
         "started_at": now - timedelta(seconds=12), "finished_at": now}
    )  # fmt: skip
    state.apply(TaskView.build("t1", done, ConnectionState.IDLE))
    state.apply_row(done, now)

    assert state.timing_text == "took 12 s in attempt 2"
    assert (state.connection, state.connection_icon) == ("done", CONNECTION_LOOKS["done"].icon)


def test_a_cancelled_task_does_not_repeat_the_word_in_its_message() -> None:
    state = TaskState()

    state.apply(_view(status="cancelled", message="cancelled"))
    assert (state.message, state.cancel_note) == ("", "")

    state.apply(_view(status="cancelled", message="cancelled before it started"))
    assert (state.message, state.cancel_note) == ("", "cancelled before it started")


def test_chart_labels_are_compact_numbers() -> None:
    assert compact_label("5.3e+04–9.4e+04") == "53k–94k"
    assert compact_label("-1–3.875") == "-1–3.88"
    assert compact_label("1.25e+06") == "1.25M"
    assert compact_label("999.6") == "1k"
    assert compact_label("Oslo") == "Oslo"
    assert compact_number(0.00012) == "1.2e-04"
