"""NiceGUI-bindable mirror of a TaskContext's TaskView snapshot.

TaskContext calls its listeners with a frozen TaskView on every change; ``TaskState.apply``
copies it into bindable properties, so the bound elements update at once, with no timer.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from nicegui import binding

from services.models import TaskView
from ui.design import CONNECTION_LOOKS, NO_TASK_LOOK, STATUS_LOOKS


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
    is_active: bool = False
    progress: float = 0.0
    progress_text: str = ""
    message: str = ""
    error: str = ""
    connection_error: str = ""
    result_id: str | None = None
    connection: str = "idle"
    connection_color: str = CONNECTION_LOOKS["idle"].color
    connection_icon: str = CONNECTION_LOOKS["idle"].icon

    def apply(self, view: TaskView) -> None:
        """Copy a TaskView snapshot into the bindable fields."""
        status = _word(view.status)
        look = STATUS_LOOKS.get(status, NO_TASK_LOOK) if status else NO_TASK_LOOK
        connection = _word(view.connection) or "idle"
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
        self.is_active = bool(view.is_active)
        self.progress = progress / 100
        self.progress_text = f"{progress} %"
        self.message = view.message or ""
        self.error = (view.error or "") if view.is_failed else ""
        self.connection_error = "" if view.is_failed else (view.error or "")
        self.result_id = str(view.result_id) if view.result_id else None
        self.connection = connection
        self.connection_color = connection_look.color
        self.connection_icon = connection_look.icon


def _word(value: Any) -> str:
    """Enum members and plain strings alike become their lower-case word ('' for None)."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        value = value.value
    return str(value).lower()
