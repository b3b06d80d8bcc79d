"""Rows of `public.tasks` / `public.task_results` and the derived view the UI shows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class TaskStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

_SHORT_OFFSET = re.compile(r"([+-]\d{2})$")


def parse_timestamp(value: Any) -> datetime | None:
    """Read a timestamp as REST or Realtime send it; naive values are taken as UTC.

    Accepts `2025-01-15T10:20:30.123456+00:00`, `...Z`, a space instead of `T`, an offset
    without minutes (`+00`) and any number of fractional digits.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        text = _SHORT_OFFSET.sub(r"\1:00", text) if "T" in text else text
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not a timestamp: {value!r}") from exc
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


Timestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp)]


class Task(BaseModel):
    """One row of `public.tasks`; unknown extra columns are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str
    user_id: str | None = None
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    status: TaskStatus = TaskStatus.PENDING
    progress: int = 0
    message: str | None = None
    result_id: str | None = None
    error_message: str | None = None
    attempts: int = 0
    max_attempts: int = 3
    worker_id: str | None = None
    lease_expires_at: Timestamp = None
    cancel_requested: bool = False
    created_at: Timestamp = None
    started_at: Timestamp = None
    finished_at: Timestamp = None
    updated_at: Timestamp = None

    def is_newer_than(self, other: Task | None) -> bool:
        """True when this version of the row should replace `other`.

        Versions are ordered by `updated_at`, which a trigger makes strictly increasing per
        row; a version without `updated_at` never replaces one that has it.
        """
        if other is None:
            return True
        if self.updated_at is None:
            return other.updated_at is None and self != other
        if other.updated_at is None:
            return True
        return self.updated_at > other.updated_at

    def merged(self, record: dict[str, Any]) -> Task:
        """This row with the columns of a (possibly partial) Realtime record applied."""
        return Task.model_validate({**self.model_dump(), **record})


class TaskResult(BaseModel):
    """One row of `public.task_results`."""

    model_config = ConfigDict(extra="ignore")

    id: str
    task_id: str
    user_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: Timestamp = None


class ConnectionState(StrEnum):
    """How the live subscription for the active task is doing."""

    IDLE = "idle"  # no channel: no task, or the task has finished
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class TaskView:
    """Immutable snapshot of the active task, with every value the UI binds to."""

    task_id: str | None = None
    kind: str | None = None
    status: TaskStatus | None = None
    is_pending: bool = False
    is_processing: bool = False
    is_completed: bool = False
    is_failed: bool = False
    is_cancelled: bool = False
    is_active: bool = False
    is_terminal: bool = False
    progress: int = 0
    message: str = ""
    error: str | None = None
    result_id: str | None = None
    connection: ConnectionState = ConnectionState.IDLE

    @classmethod
    def build(
        cls,
        task_id: str | None,
        task: Task | None,
        connection: ConnectionState,
        error: str | None = None,
    ) -> TaskView:
        """Derive the snapshot from the newest row known and the connection state.

        `error` is a connection problem; a failed task's `error_message` takes precedence.
        """
        if task is None:
            return cls(task_id=task_id, connection=connection, error=error)
        status = task.status
        return cls(
            task_id=task.id,
            kind=task.kind,
            status=status,
            is_pending=status == TaskStatus.PENDING,
            is_processing=status == TaskStatus.PROCESSING,
            is_completed=status == TaskStatus.COMPLETED,
            is_failed=status == TaskStatus.FAILED,
            is_cancelled=status == TaskStatus.CANCELLED,
            is_active=status in (TaskStatus.PENDING, TaskStatus.PROCESSING),
            is_terminal=status.is_terminal,
            progress=max(0, min(100, task.progress)),
            message=task.message or "",
            error=task.error_message if status == TaskStatus.FAILED else error,
            result_id=task.result_id,
            connection=connection,
        )


NoticeLevel = Literal["positive", "negative", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for a toast; `level` uses NiceGUI's notification types."""

    level: NoticeLevel
    text: str
