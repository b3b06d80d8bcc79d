"""PageController: binds one tab to its browser's Viewer for the tab's surface.

It mirrors the active task into a TaskState, loads a completed task's result, keeps the
history list current and forwards the person's actions (submit, cancel, watch, re-run) to
the services. Live updates come only from the context's one channel: the history is read
again when the active task changes status, after every action, and (slowly) while an older
task that is not the active one is still unfinished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from nicegui import app, background_tasks, ui
from nicegui.client import Client

from services.errors import ServiceError
from services.models import Notice, Task, TaskStatus, TaskView
from services.tasks_api import TasksApi
from ui import design
from ui.components import result_loading, result_view
from ui.history import HistoryList
from ui.state import TaskState
from ui.toast import toast
from ui.viewers import Viewer, Viewers

log = logging.getLogger(__name__)

# While the list shows an unfinished task other than the active one, read it this often.
HISTORY_POLL_SECONDS = 10.0
# The page's own event when the tab becomes visible again (see VISIBILITY_SCRIPT).
VISIBLE_EVENT = "tasklight_visible"
VISIBILITY_SCRIPT = f"""<script>
document.addEventListener("visibilitychange", () => {{
  if (document.visibilityState === "visible") emitEvent("{VISIBLE_EVENT}");
}});
</script>"""


class PageController:
    """One tab's live task, result, history and actions."""

    def __init__(
        self,
        client: Client,
        viewers: Viewers,
        *,
        dark: bool = False,
        local_worker: bool = True,
        surface: str = "",
    ) -> None:
        self.client = client
        self.surface = surface
        self.viewers = viewers
        self.dark = dark
        self.state = TaskState(local_worker=local_worker)
        self.viewer: Viewer | None = None
        self.api: TasksApi | None = None
        self.history: HistoryList | None = None
        self.result_box: ui.column | None = None
        self.on_result: Callable[[dict[str, Any] | None], None] | None = None
        self.on_terminal: Callable[[TaskView], None] | None = None
        self.on_ready: Callable[[], None] | None = None
        self._browser_id: str = app.storage.browser["id"]
        self._forget: list[Callable[[], None]] = []
        self._shown_result: str | None = None
        self._last_status: TaskStatus | None = None
        self._history_busy = False
        self._history_again = False
        self._last_history_read = 0.0
        self._submitting = False

    # Start-up and teardown

    async def start(self) -> bool:
        """Wait for the browser, sign in, follow the stored task; False when that failed.

        A page that was fetched but never connected (a prefetch, `curl`) is deleted by NiceGUI
        after a while, together with its browser's storage: then nothing is acquired.
        """
        ui.add_body_html(VISIBILITY_SCRIPT)
        await self.client.connected()
        if self.client.is_deleted:
            return False
        try:
            self.viewer = await self.viewers.acquire(
                self._browser_id, app.storage.user, self.surface
            )
        except ServiceError as exc:
            log.warning("could not open a session for browser %s: %s", self._browser_id, exc)
            toast(f"cannot reach the task service: {exc}", "negative", sticky=True)
            if self.history is not None:
                self.history.show([], None, str(exc))
            return False
        if self.client.is_deleted:  # the tab went away while signing in
            await self.viewers.release(self._browser_id, self.surface)
            self.viewer = None
            return False
        self.client.on_delete(self._leave)
        self.api = TasksApi(self.viewer.session)
        self._forget.append(self.viewer.context.add_listener(self._on_view))
        self._forget.append(self.viewer.context.add_notice_listener(self._on_notice))
        self._on_view(self.viewer.context.view)
        self.refresh_history()
        # Registered after the first connection, so these run on reconnects only.
        self.client.on_connect(self.catch_up)
        ui.on(VISIBLE_EVENT, self.catch_up)
        if self.on_ready is not None:
            self.on_ready()
        return True

    async def catch_up(self) -> None:
        """Show the current state now: after a reconnect or when the tab is visible again."""
        if self.viewer is None or self.client.is_deleted:
            return
        try:
            await self.viewer.refresh()
        except ServiceError as exc:
            log.info("refresh after reconnect/visibility failed: %s", exc)
        self.refresh_history()

    async def _leave(self) -> None:
        for remove in self._forget:
            remove()
        await self.viewers.release(self._browser_id, self.surface)

    # Actions

    async def submit(self, kind: str, params: dict[str, Any]) -> bool:
        """Submit a task and watch it; False (with a toast) when it was refused.

        One submission at a time: clicks while one is on its way are ignored (the flag is
        set before the first await, so rapid clicks cannot slip through).
        """
        if self._submitting:
            return False
        if self.viewer is None:
            toast("still connecting; try again in a moment", "warning")
            return False
        self._submitting = True
        try:
            await self.viewer.submit(kind, params)
        except ServiceError as exc:
            toast(f"the task was not submitted ({exc})", "negative")
            return False
        finally:
            self._submitting = False
        self.refresh_history()
        return True

    @property
    def submitting(self) -> bool:
        """True while a submission (or re-run) is on its way."""
        return self._submitting

    async def cancel(self) -> None:
        """Cancel the active task (the worker stops a running one at its next report)."""
        task_id = self.state.task_id
        if self.api is None or self.viewer is None or task_id is None:
            return
        try:
            task = await self.api.cancel(task_id)
        except ServiceError as exc:
            toast(f"the task could not be cancelled ({exc})", "negative")
            return
        if task.status == TaskStatus.PROCESSING:
            # The view does not carry the cancel flag; show "stopping…" from this row.
            self.state.apply_row(task)
            toast("asked the worker to stop the task")
        await self.viewer.context.refresh()
        self.refresh_history()

    async def watch(self, task_id: str | None) -> None:
        """Make a task (None: no task) the active one for this browser."""
        if self.viewer is None:
            return
        await self.viewer.watch(task_id)
        if self.history is not None and self.history.tasks is not None:
            self.history.show(self.history.tasks, task_id)

    async def rerun(self, task_id: str) -> None:
        """Submit a new task with the same kind and parameters as `task_id`."""
        if self._submitting or self.api is None or self.viewer is None:
            return
        self._submitting = True
        try:
            await self.api.rerun(task_id, self.viewer)
        except ServiceError as exc:
            toast(f"the task was not run again ({exc})", "negative")
            return
        finally:
            self._submitting = False
        self.refresh_history()

    async def params_of(self, task_id: str) -> tuple[str, dict[str, Any]] | None:
        """The kind and parameters of a task, for filling the form."""
        if self.api is None:
            return None
        try:
            return await self.api.params(task_id)
        except ServiceError as exc:
            toast(f"could not read the task's parameters ({exc})", "negative")
            return None

    def tick(self) -> None:
        """Every second: elapsed time and ETA; history times and unfinished rows now and then."""
        self.state.tick()
        history = self.history
        if history is None or history.tasks is None:
            return
        loop = asyncio.get_running_loop()
        waiting = any(
            not task.status.is_terminal and task.id != self.state.task_id for task in history.tasks
        )
        interval = HISTORY_POLL_SECONDS if waiting else 30.0
        if loop.time() - self._last_history_read >= interval:
            self.refresh_history()

    # History

    def refresh_history(self) -> None:
        """Read the history again (coalesced: one read at a time, one more if asked meanwhile)."""
        if self.history is None or self.api is None:
            return
        if self._history_busy:
            self._history_again = True
            return
        self._history_busy = True
        background_tasks.create(self._read_history(), name="read history")

    async def _read_history(self) -> None:
        assert self.api is not None and self.history is not None
        try:
            while True:
                self._history_again = False
                self._last_history_read = asyncio.get_running_loop().time()
                try:
                    tasks: list[Task] = await self.api.recent()
                    error = ""
                except ServiceError as exc:
                    tasks, error = self.history.tasks or [], str(exc)
                if self.client.is_deleted:
                    return
                self.history.show(tasks, self.state.task_id, error)
                if not self._history_again:
                    return
        finally:
            self._history_busy = False

    # Listeners

    def _on_view(self, view: TaskView) -> None:
        self.state.apply(view)
        task = self.viewer.context.task if self.viewer is not None else None
        task = task if task is not None and task.id == view.task_id else None
        self.state.apply_row(task)
        self._patch_history(task)
        if view.status != self._last_status:
            previous, self._last_status = self._last_status, view.status
            if previous is not None or view.status is not None:
                self.refresh_history()
            if view.is_terminal and previous is not None and self.on_terminal is not None:
                self.on_terminal(view)
        if not view.is_completed and self._shown_result is not None:
            self._shown_result = None
            self._show_payload(None, clear_only=True)
        elif view.is_completed and view.result_id and view.result_id != self._shown_result:
            self._shown_result = view.result_id
            self._show_payload(None, clear_only=True)
            background_tasks.create(self._load_result(view.result_id), name="load result")

    def _patch_history(self, task: Task | None) -> None:
        """Show the active task's live row in the history list too (no extra read)."""
        history = self.history
        if task is None or history is None or not history.tasks:
            return
        rows = [task if row.id == task.id else row for row in history.tasks]
        if rows != history.tasks:
            history.show(rows, task.id, history.error)

    def _on_notice(self, notice: Notice) -> None:
        if not self.client.is_deleted:
            with self.client:
                toast(notice.text, notice.level)

    async def _load_result(self, result_id: str) -> None:
        assert self.viewer is not None
        try:
            payload = await self.viewer.result(result_id)
        except ServiceError as exc:
            with self.client:
                toast(f"could not load the result ({exc})", "negative")
            return
        if self.state.result_id != result_id or self.client.is_deleted:
            return  # another task became active meanwhile
        self._show_payload(payload)

    def _show_payload(self, payload: dict[str, Any] | None, clear_only: bool = False) -> None:
        if self.on_result is not None:
            self.on_result(None if clear_only else payload)
        box = self.result_box
        if box is None or box.is_deleted:
            return
        box.clear()
        with box:
            if clear_only:
                # Until the next result arrives, the (hidden or just shown) card says so.
                result_loading()
            elif payload is None:
                ui.label("The result is not available.").classes(design.MUTED)
            else:
                result_view(payload, self.dark)
