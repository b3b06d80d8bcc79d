"""One SupabaseSession and one TaskContext per browser, shared by that browser's tabs.

The identity (refresh token) and the active task id live in NiceGUI's per-browser storage
(``app.storage.user``, server-side), so a reload or a new tab shows the same user's task.
Both objects are closed when the last tab of the browser is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

from services.models import Task
from services.settings import Settings
from services.supabase_session import SupabaseSession
from services.task_context import TaskContext

log = logging.getLogger(__name__)

IDENTITY_KEY = "identity"
ACTIVE_TASK_KEY = "active_task"


class Viewer:
    """A browser's signed-in session and the task it watches."""

    def __init__(
        self, session: SupabaseSession, context: TaskContext, storage: MutableMapping[str, Any]
    ) -> None:
        self.session = session
        self.context = context
        self._storage = storage

    @classmethod
    async def open(cls, settings: Settings, storage: MutableMapping[str, Any]) -> Viewer:
        """Sign in (restoring the stored identity) and resume the stored active task.

        Raises:
            ServiceError: the project refused or could not be reached.
        """
        assert settings.supabase_url and settings.public_key

        def keep_identity(identity: dict[str, str]) -> None:
            storage[IDENTITY_KEY] = identity

        session = await SupabaseSession.open(
            settings.supabase_url,
            settings.public_key,
            stored=storage.get(IDENTITY_KEY),
            on_identity=keep_identity,
        )
        if session.identity is not None:
            storage[IDENTITY_KEY] = session.identity
        viewer = cls(session, TaskContext(session), storage)
        await viewer._resume()
        return viewer

    async def submit(self, kind: str, params: dict[str, Any]) -> Task:
        """Insert a task and make it the active one.

        Raises:
            ServiceError: the insert was refused or the API could not be reached.
        """
        task = await self.session.submit(kind, params)
        self._storage[ACTIVE_TASK_KEY] = {"user_id": self.session.user_id, "task_id": task.id}
        await self.context.set_task(task.id, initial=task)
        return task

    async def refresh(self) -> None:
        """Show the current state now: call on a NiceGUI websocket reconnect
        (`client.on_connect`) and when the tab becomes visible again."""
        await self.context.refresh()

    async def result(self, result_id: str) -> dict[str, Any] | None:
        """The stored result payload, or None when it is not visible."""
        return await self.session.result(result_id)

    async def close(self) -> None:
        """Remove the channel and close the client; the user stays signed in."""
        await self.context.dispose()
        await self.session.close()

    async def _resume(self) -> None:
        stored = self._storage.get(ACTIVE_TASK_KEY)
        if not isinstance(stored, dict) or stored.get("user_id") != self.session.user_id:
            return
        task_id = stored.get("task_id")
        if isinstance(task_id, str):
            log.debug("resuming task %s", task_id)
            await self.context.set_task(task_id)


class Viewers:
    """Viewer per browser id, opened by its first tab and closed after its last one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._opening: dict[str, asyncio.Task[Viewer]] = {}
        self._tabs: dict[str, int] = {}

    async def acquire(self, browser_id: str, storage: MutableMapping[str, Any]) -> Viewer:
        """The browser's viewer, opened if needed; pair every call with `release`.

        Raises:
            ServiceError: signing in failed (the next call tries again).
        """
        self._tabs[browser_id] = self._tabs.get(browser_id, 0) + 1
        opening = self._opening.get(browser_id)
        if opening is None:
            opening = asyncio.create_task(Viewer.open(self.settings, storage))
            self._opening[browser_id] = opening
        try:
            # Shielded: a tab that goes away while signing in must not cancel it for others.
            return await asyncio.shield(opening)
        except Exception:
            if self._opening.get(browser_id) is opening:
                del self._opening[browser_id]
            raise

    async def release(self, browser_id: str) -> None:
        """One tab of the browser is gone; close the viewer after the last one."""
        tabs = self._tabs.get(browser_id, 0) - 1
        if tabs > 0:
            self._tabs[browser_id] = tabs
            return
        self._tabs.pop(browser_id, None)
        opening = self._opening.pop(browser_id, None)
        if opening is None:
            return
        try:
            viewer = await opening
        except Exception:
            return
        await viewer.close()
        log.debug("closed the viewer of browser %s", browser_id)

    async def close_all(self) -> None:
        """Close every viewer (at shutdown)."""
        openings = list(self._opening.values())
        self._opening.clear()
        self._tabs.clear()
        for opening in openings:
            try:
                viewer = await opening
            except Exception:
                continue
            await viewer.close()
