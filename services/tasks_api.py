"""What a viewer does with tasks besides watching one: history, cancel, re-run.

Everything runs as the signed-in user through the official client, so row level security
decides what is visible; cancelling goes through the `request_cancel` rpc (the only way a
user changes a task row), which checks ownership in the database.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from services.errors import RequestError
from services.models import Task

log = logging.getLogger(__name__)

# Everything a history row shows; `params` is left out, it may be large (an uploaded file).
HISTORY_COLUMNS = (
    "id,kind,status,progress,message,error_message,attempts,max_attempts,cancel_requested,"
    "result_id,created_at,started_at,finished_at,updated_at"
)
DEFAULT_HISTORY_LIMIT = 20


class Submitter(Protocol):
    """Inserts a task as the user and makes it the active one (ui.viewers.Viewer)."""

    async def submit(self, kind: str, params: dict[str, Any]) -> Task: ...


class UserSession(Protocol):
    """The signed-in session (services.supabase_session.SupabaseSession) the calls run on."""

    client: Any

    async def execute(self, query: Any, what: str) -> list[dict[str, Any]]: ...


class TasksApi:
    """History, cancel and re-run for one signed-in user, on their session."""

    def __init__(self, session: UserSession) -> None:
        self.session = session

    @property
    def client(self) -> Any:
        return self.session.client

    async def recent(self, limit: int = DEFAULT_HISTORY_LIMIT) -> list[Task]:
        """The user's newest tasks first, without their parameters."""
        query = (
            self.client.table("tasks")
            .select(HISTORY_COLUMNS)
            .order("created_at", desc=True)
            .limit(limit)
        )
        return [Task.model_validate(row) for row in await self.session.execute(query, "history")]

    async def params(self, task_id: str) -> tuple[str, dict[str, Any]] | None:
        """The kind and parameters a task was submitted with, or None when not visible."""
        query = self.client.table("tasks").select("kind,params").eq("id", task_id).limit(1)
        rows = await self.session.execute(query, "load parameters")
        return (rows[0]["kind"], rows[0].get("params") or {}) if rows else None

    async def cancel(self, task_id: str) -> Task:
        """Cancel a pending task now, or ask the worker to stop a processing one.

        Raises:
            RequestError: the task is not the user's, or the API could not be reached.
        """
        rows = await self.session.execute(
            self.client.rpc("request_cancel", {"p_task_id": task_id}), "cancel"
        )
        if not rows:
            raise RequestError("cancel returned no task")
        task = Task.model_validate(rows[0])
        log.info("cancel of task %s: now %s", task_id, task.status)
        return task

    async def rerun(self, task_id: str, submitter: Submitter) -> Task:
        """Submit a new task with the kind and parameters of `task_id`."""
        found = await self.params(task_id)
        if found is None:
            raise RequestError("that task is no longer visible")
        kind, params = found
        return await submitter.submit(kind, params)
