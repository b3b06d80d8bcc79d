"""One SupabaseSession and one TaskContext per browser, shared by that browser's tabs.

The identity (refresh token) and the active task id live in NiceGUI's per-browser storage
(``app.storage.user``, server-side), so a reload or a new tab shows the same user's task.
Each surface (the full page ``""``, ``"kiosk:demo"``, ``"embed:csv"`` …) has its own task
context and its own stored active task on the browser's one session, so a kiosk or an embed
shows only tasks it started itself and never changes what ``/`` shows. A context is closed
after the last tab of its surface, the session after the browser's last tab.
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


def active_task_key(surface: str) -> str:
    """The storage key of a surface's active task (the full page keeps the plain key)."""
    return f"{ACTIVE_TASK_KEY}:{surface}" if surface else ACTIVE_TASK_KEY


async def open_session(settings: Settings, storage: MutableMapping[str, Any]) -> SupabaseSession:
    """Sign in, restoring (and afterwards keeping) the identity stored in `storage`.

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
    return session


class Viewer:
    """A surface's task context on a browser's signed-in session."""

    def __init__(
        self,
        session: SupabaseSession,
        context: TaskContext,
        storage: MutableMapping[str, Any],
        surface: str = "",
        *,
        owns_session: bool = True,
    ) -> None:
        self.session = session
        self.context = context
        self.surface = surface
        self._storage = storage
        self._owns_session = owns_session

    @classmethod
    async def open(
        cls, settings: Settings, storage: MutableMapping[str, Any], surface: str = ""
    ) -> Viewer:
        """Sign in and resume the surface's stored active task (closing closes the session).

        Raises:
            ServiceError: the project refused or could not be reached.
        """
        session = await open_session(settings, storage)
        return await cls.follow(session, storage, surface, owns_session=True)

    @classmethod
    async def follow(
        cls,
        session: SupabaseSession,
        storage: MutableMapping[str, Any],
        surface: str = "",
        *,
        owns_session: bool = False,
    ) -> Viewer:
        """A new context on `session` that resumes the surface's stored active task."""
        viewer = cls(session, TaskContext(session), storage, surface, owns_session=owns_session)
        await viewer._resume()
        return viewer

    @property
    def storage_key(self) -> str:
        return active_task_key(self.surface)

    async def submit(self, kind: str, params: dict[str, Any]) -> Task:
        """Insert a task and make it the active one.

        Raises:
            ServiceError: the insert was refused or the API could not be reached.
        """
        task = await self.session.submit(kind, params)
        self._remember(task.id)
        await self.context.set_task(task.id, initial=task)
        return task

    async def watch(self, task_id: str | None) -> None:
        """Make `task_id` (None: no task) this surface's active task."""
        self._remember(task_id)
        await self.context.set_task(task_id)

    async def refresh(self) -> None:
        """Show the current state now: call on a NiceGUI websocket reconnect
        (`client.on_connect`) and when the tab becomes visible again."""
        await self.context.refresh()

    async def result(self, result_id: str) -> dict[str, Any] | None:
        """The stored result payload, or None when it is not visible."""
        return await self.session.result(result_id)

    async def close(self) -> None:
        """Remove the channel (and close an owned client); the user stays signed in."""
        await self.context.dispose()
        if self._owns_session:
            await self.session.close()

    def _remember(self, task_id: str | None) -> None:
        if task_id is None:
            self._storage.pop(self.storage_key, None)
        else:
            self._storage[self.storage_key] = {"user_id": self.session.user_id, "task_id": task_id}

    async def _resume(self) -> None:
        stored = self._storage.get(self.storage_key)
        if not isinstance(stored, dict) or stored.get("user_id") != self.session.user_id:
            return
        task_id = stored.get("task_id")
        if isinstance(task_id, str):
            log.debug("resuming task %s on surface %r", task_id, self.surface)
            await self.context.set_task(task_id)


Key = tuple[str, str]  # (browser id, surface)


class Viewers:
    """A session per browser and a Viewer per browser and surface, refcounted by tabs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sessions: dict[str, asyncio.Task[SupabaseSession]] = {}
        self._opening: dict[Key, asyncio.Task[Viewer]] = {}
        self._tabs: dict[Key, int] = {}

    async def acquire(
        self, browser_id: str, storage: MutableMapping[str, Any], surface: str = ""
    ) -> Viewer:
        """The surface's viewer for this browser, opened if needed; pair with `release`.

        Raises:
            ServiceError: signing in failed (the next call tries again).
        """
        key = (browser_id, surface)
        self._tabs[key] = self._tabs.get(key, 0) + 1
        opening = self._opening.get(key)
        if opening is None:
            opening = asyncio.create_task(self._open(browser_id, storage, surface))
            self._opening[key] = opening
        try:
            # Shielded: a tab that goes away while signing in must not cancel it for others.
            return await asyncio.shield(opening)
        except Exception:
            if self._opening.get(key) is opening:
                del self._opening[key]
            # The caller holds nothing to release: take this tab back out of the count.
            tabs = self._tabs.get(key, 1) - 1
            if tabs > 0:
                self._tabs[key] = tabs
            else:
                self._tabs.pop(key, None)
            raise

    async def release(self, browser_id: str, surface: str = "") -> None:
        """One tab of the surface is gone; close its viewer after the last one."""
        key = (browser_id, surface)
        tabs = self._tabs.get(key, 0) - 1
        if tabs > 0:
            self._tabs[key] = tabs
            return
        self._tabs.pop(key, None)
        opening = self._opening.pop(key, None)
        if opening is not None:
            try:
                viewer = await opening
            except Exception:
                viewer = None
            if viewer is not None:
                await viewer.close()
                log.debug("closed the %r viewer of browser %s", surface, browser_id)
        if not any(b == browser_id for b, _ in self._tabs):
            await self._close_session(browser_id)

    async def close_all(self) -> None:
        """Close every viewer and session (at shutdown)."""
        openings = list(self._opening.values())
        self._opening.clear()
        self._tabs.clear()
        for opening in openings:
            try:
                viewer = await opening
            except Exception:  # it never opened (its tab was told why): nothing to close
                continue
            await viewer.close()
        for browser_id in list(self._sessions):
            await self._close_session(browser_id)

    async def _open(
        self, browser_id: str, storage: MutableMapping[str, Any], surface: str
    ) -> Viewer:
        opening = self._sessions.get(browser_id)
        if opening is None:
            opening = asyncio.create_task(open_session(self.settings, storage))
            self._sessions[browser_id] = opening
        try:
            session = await asyncio.shield(opening)
        except Exception:
            if self._sessions.get(browser_id) is opening:
                del self._sessions[browser_id]
            raise
        return await Viewer.follow(session, storage, surface)

    async def _close_session(self, browser_id: str) -> None:
        opening = self._sessions.pop(browser_id, None)
        if opening is None:
            return
        try:
            session = await opening
        except Exception:  # sign-in failed (the tab was told why): nothing to close
            return
        await session.close()
        log.debug("closed the session of browser %s", browser_id)
