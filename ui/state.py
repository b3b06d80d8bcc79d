"""NiceGUI-bindable mirror of a TaskContext's TaskView snapshot.

TaskContext calls its listeners with a frozen TaskView on every change; ``TaskState.apply``
copies it into bindable properties, so the bound elements update at once, with no timer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from nicegui import binding

from services.models import Task, TaskView
from ui import format
from ui.design import CONNECTION_LOOKS, NO_TASK_LOOK, STATUS_LOOKS

# A pending task waits this long before the page says that no worker has taken it yet
# (with a worker in this process; without one it says so at once).
PENDING_HINT_SECONDS = 3.0
WAITING_FOR_WORKER = "waiting for a worker to pick it up"
NO_LOCAL_WORKER = f"{WAITING_FOR_WORKER} (none runs in this app: start `main.py worker`)"
PROGRESS_COLORS = {"failed": "negative", "cancelled": "deep-orange-10"}
# Cancel messages that only repeat the status word; the page says "cancelled" once already.
PLAIN_CANCEL_MESSAGES = {"cancelled", "canceled", "cancelled."}


@binding.bindable_dataclass
class TaskState:
    """What the status bar and result panel show for one browser tab."""

    task_id: str | None = None
    has_task: bool = False
    status: str = "no task yet"
    status_color: str = NO_TASK_LOOK.color
    status_icon: str = NO_TASK_LOOK.icon
    is_pending: bool = False
    is_processing: bool = False
    is_completed: bool = False
    is_failed: bool = False
    is_cancelled: bool = False
    is_terminal: bool = False
    is_active: bool = False
    can_cancel: bool = False
    cancel_requested: bool = False
    kind: str = ""
    attempts_text: str = ""
    timing_text: str = ""
    progress: float = 0.0
    progress_percent: int = 0
    progress_text: str = ""
    progress_color: str = "primary"
    message: str = ""
    task_message: str = ""  # the worker's own message, before view-only hints
    local_worker: bool = True  # a worker runs in this process
    cancel_note: str = ""  # a cancel message that says more than "cancelled"
    stalled: bool = False  # processing, but the worker's lease ran out without progress
    error: str = ""
    connection_error: str = ""
    result_id: str | None = None
    connection: str = "idle"
    connection_color: str = CONNECTION_LOOKS["idle"].color
    connection_icon: str = CONNECTION_LOOKS["idle"].icon
    row: Task | None = None  # the full row behind the view, for timing and attempts

    def apply(self, view: TaskView) -> None:
        """Copy a TaskView snapshot into the bindable fields."""
        status = _word(view.status)
        look = STATUS_LOOKS.get(status, NO_TASK_LOOK) if status else NO_TASK_LOOK
        connection = _word(view.connection) or "idle"
        if connection == "idle" and view.is_terminal:
            connection = "done"  # nothing left to follow, not a lost connection
        connection_look = CONNECTION_LOOKS.get(connection, CONNECTION_LOOKS["idle"])
        progress = int(view.progress or 0)

        self.task_id = view.task_id
        self.has_task = bool(status)
        self.status = status or "no task yet"
        self.status_color = look.color
        self.status_icon = look.icon
        self.is_pending = bool(view.is_pending)
        self.is_processing = bool(view.is_processing)
        self.is_completed = bool(view.is_completed)
        self.is_failed = bool(view.is_failed)
        self.is_cancelled = bool(view.is_cancelled)
        self.is_terminal = bool(view.is_terminal)
        self.is_active = bool(view.is_active)
        self.can_cancel = self.is_active and not self.cancel_requested
        self.kind = view.kind or ""
        self.progress_percent = progress
        self.progress = progress / 100
        self.progress_text = f"{progress} %"
        self.progress_color = PROGRESS_COLORS.get(status, "primary")
        # A failed task's last progress message ("step 2 of 5") would contradict its reason,
        # which the failure panel shows.
        message = view.message or ""
        cancel_note = message if message.strip().lower() not in PLAIN_CANCEL_MESSAGES else ""
        self.cancel_note = cancel_note if view.is_cancelled else ""
        # The cancelled panel says what happened (once); the bar does not repeat it.
        self.task_message = "" if view.is_failed or view.is_cancelled else message
        self.message = self._pending_message(None) or self.task_message
        self.error = (view.error or "") if view.is_failed else ""
        self.connection_error = "" if view.is_failed else (view.error or "")
        self.result_id = str(view.result_id) if view.result_id else None
        self.connection = connection
        self.connection_color = connection_look.color
        self.connection_icon = connection_look.icon

    def apply_row(self, task: Task | None, now: datetime | None = None) -> None:
        """Show what only the full row has: attempts, cancel request, elapsed time and ETA."""
        self.row = task
        self.cancel_requested = bool(task and task.cancel_requested and not self.is_terminal)
        self.can_cancel = self.is_active and not self.cancel_requested
        if task is not None and task.attempts > 1:
            self.attempts_text = f"attempt {task.attempts} of {task.max_attempts}"
        else:
            self.attempts_text = ""
        self.tick(now)

    def tick(self, now: datetime | None = None) -> None:
        """Recompute elapsed time and ETA (called every second while a task runs)."""
        task = self.row
        self.stalled = False
        if task is None or task.id != self.task_id:
            self.timing_text = ""
            return
        now = now or datetime.now(UTC)
        if self.is_pending:
            seconds = (now - task.created_at).total_seconds() if task.created_at else None
            waited = format.duration(seconds) if seconds is not None else ""
            self.timing_text = f"waiting {waited}" if waited else ""
            self.message = self._pending_message(seconds) or self.task_message
        elif self.is_processing and (stalled := _stalled_text(task, now)):
            self.stalled = True
            self.timing_text = stalled
        elif task.started_at is None:
            self.timing_text = ""
        else:
            # started_at is the current attempt's start (a retry sets it again).
            end = task.finished_at if self.is_terminal and task.finished_at else now
            elapsed = (end - task.started_at).total_seconds()
            text = f"{'took' if self.is_terminal else 'elapsed'} {format.duration(elapsed)}"
            if self.is_terminal and task.attempts > 1:
                text += f" in attempt {task.attempts}"
            left = None if self.is_terminal else format.eta(self.progress_percent, elapsed)
            self.timing_text = (
                text if left is None else f"{text} · about {format.duration(left)} left"
            )

    def _pending_message(self, waited: float | None) -> str:
        """'waiting for a worker…' for a pending task no worker took (view-only, no message)."""
        if not self.is_pending or self.task_message:
            return ""
        if not self.local_worker:
            return NO_LOCAL_WORKER
        if waited is not None and waited >= PENDING_HINT_SECONDS:
            return WAITING_FOR_WORKER
        return ""


def _stalled_text(task: Task, now: datetime) -> str:
    """'no progress for N s — …' once a processing task's lease ran out, else ''."""
    lease = task.lease_expires_at
    if lease is None or now <= lease:
        return ""
    since = task.updated_at or task.started_at or lease
    quiet = format.duration((now - since).total_seconds())
    if task.attempts < task.max_attempts:
        then = "it will be retried"
    else:
        then = "it will be marked failed (no attempts left)"
    return f"no progress for {quiet} — the worker may have stopped; {then}"


def _word(value: Any) -> str:
    """Enum members and plain strings alike become their lower-case word ('' for None)."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        value = value.value
    return str(value).lower()
