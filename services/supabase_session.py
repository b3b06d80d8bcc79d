"""SupabaseSession: one official AsyncClient per browser, signed in anonymously.

The caller keeps the identity (a small dict with the refresh token) in server-side
per-browser storage. `start(stored)` restores it with a refresh, so a reload is the same
user; the refresh token rotates on every refresh, and `on_identity` is called with the new
dict each time so the caller can store it.

Token lifetime: the session refreshes the access token at about 80 % of its life, judged by
the wall clock (so a laptop waking from sleep refreshes at once), and waits until the new
token is in Realtime (socket, joined channels, the stored join payload of every channel, so
rejoins carry it too) before going on. A REST call whose token is about to expire refreshes
first. A failed refresh is retried with backoff forever and reported to notice listeners.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
from postgrest import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from supabase_auth.errors import AuthApiError, AuthError, AuthRetryableError
from supabase_auth.types import Session

from services.errors import RequestError, SessionError
from services.models import Notice, Task

log = logging.getLogger(__name__)

IdentityListener = Callable[[dict[str, str]], None]
NoticeListener = Callable[[Notice], None]

MIN_REFRESH_DELAY = 0.5  # even for tokens that live only a few seconds (tests)
MAX_RETRY_DELAY = 60.0
CLOCK_CHECK_SECONDS = 15.0  # the refresh timer re-reads the wall clock this often
EXPIRY_MARGIN_SECONDS = 2.0  # a REST call refreshes first when the token expires this soon


class SupabaseSession:
    """A signed-in anonymous user and the client that acts for them.

    The client's own refresh timer is off: this object refreshes the token itself so that
    `close()` can stop it (a forgotten client would otherwise keep rotating the token).
    """

    def __init__(self, client: AsyncClient, on_identity: IdentityListener | None = None) -> None:
        self.client = client
        self._on_identity = on_identity
        self._session: Session | None = None
        self._last_refresh_token: str | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self._refresh_lock = asyncio.Lock()
        self._notice_listeners: list[NoticeListener] = []
        self._auth_subscription = client.auth.on_auth_state_change(self._on_auth_event)
        self._closed = False
        self.refreshes = 0  # successful token refreshes, for tests and diagnostics

    @classmethod
    async def open(
        cls,
        url: str,
        public_key: str,
        stored: dict[str, Any] | None = None,
        on_identity: IdentityListener | None = None,
        realtime: dict[str, Any] | None = None,
    ) -> SupabaseSession:
        """Create the client and sign in: restore `stored` when possible, else a new user.

        `realtime` goes to the realtime client (e.g. `initial_backoff`, `max_retries`).
        """
        options = AsyncClientOptions(auto_refresh_token=False, realtime=realtime)  # type: ignore[arg-type]
        client = await acreate_client(url, public_key, options=options)
        session = cls(client, on_identity)
        try:
            await session.start(stored)
        except BaseException:
            await session.close()
            raise
        return session

    @property
    def user_id(self) -> str | None:
        return self._session.user.id if self._session else None

    @property
    def access_token(self) -> str | None:
        return self._session.access_token if self._session else None

    def add_notice_listener(self, listener: NoticeListener) -> Callable[[], None]:
        """Call `listener(notice)` on sign-in problems; returns a function that removes it."""
        self._notice_listeners.append(listener)
        return lambda: (
            self._notice_listeners.remove(listener) if listener in self._notice_listeners else None
        )

    @property
    def identity(self) -> dict[str, str] | None:
        """What the caller stores to get the same user back after a reload."""
        if self._session is None:
            return None
        return {"refresh_token": self._session.refresh_token, "user_id": self._session.user.id}

    async def start(self, stored: dict[str, Any] | None = None) -> None:
        """Restore the stored identity, or sign in as a new anonymous user."""
        if not (stored and await self.restore(stored)):
            await self.sign_in()

    async def sign_in(self) -> None:
        """Sign in as a new anonymous user."""
        try:
            response = await self.client.auth.sign_in_anonymously()
        except (AuthError, httpx.HTTPError) as exc:
            raise SessionError(f"anonymous sign-in failed: {_reason(exc)}") from exc
        if response.session is None:
            raise SessionError("anonymous sign-in returned no session")
        await self._adopt(response.session)
        log.info("signed in as new anonymous user %s", response.session.user.id)

    async def restore(self, stored: dict[str, Any]) -> bool:
        """Resume a stored identity; False when the server no longer accepts it.

        Raises SessionError when the server cannot be reached, so a network problem never
        silently replaces the user with a new one.
        """
        refresh_token = stored.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            return False
        try:
            response = await self.client.auth.refresh_session(refresh_token)
        except AuthApiError as exc:
            log.info("stored identity not accepted (%s); signing in anew", exc.message)
            return False
        except (AuthError, httpx.HTTPError) as exc:
            raise SessionError(f"could not restore the session: {_reason(exc)}") from exc
        if response.session is None:
            return False
        await self._adopt(response.session)
        log.info("restored anonymous user %s", response.session.user.id)
        return True

    async def _adopt(self, session: Session) -> None:
        self._session = session
        # The client only schedules set_auth; a channel joined before that task runs would
        # carry the anon key (protocol §1.3), so wait for the token to be in place.
        await self.client.realtime.set_auth(session.access_token)
        self._start_refreshing()

    def _on_auth_event(self, event: str, session: Session | None) -> None:
        log.debug("auth event %s", event)
        self._session = session
        if session is None or session.refresh_token == self._last_refresh_token:
            return
        self._last_refresh_token = session.refresh_token
        if self._on_identity is None:
            return
        try:
            self._on_identity({"refresh_token": session.refresh_token, "user_id": session.user.id})
        except Exception:
            log.exception("identity listener failed")

    def _start_refreshing(self) -> None:
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = asyncio.create_task(self._refresh_loop(), name="token-refresh")

    async def _refresh_loop(self) -> None:
        """Refresh before expiry, forever; failures are retried with backoff and reported."""
        failures = 0
        while not self._closed and self._session is not None:
            if failures:
                await asyncio.sleep(_retry_delay(failures))
            else:
                await _sleep_until(_refresh_at(self._session))
            if self._closed or self._session is None:
                return
            problem = await self._refresh_now()
            if problem is None:
                if failures:
                    self._notify("positive", "sign-in renewed")
                failures = 0
                continue
            failures += 1
            level = "negative" if problem.startswith("refused") else "warning"
            log.warning("token refresh %s; retry %d", problem, failures)
            if failures in (1, 5) or failures % 20 == 0:
                self._notify(level, f"could not renew the sign-in ({problem}); retrying")

    async def _refresh_now(self, *, unless_fresh: bool = False) -> str | None:
        """Refresh the token and hand it to Realtime; None on success, else the problem."""
        async with self._refresh_lock:
            session = self._session
            if self._closed or session is None:
                return "the session is closed"
            if unless_fresh and _seconds_left(session) > EXPIRY_MARGIN_SECONDS:
                return None  # another caller refreshed while this one waited
            try:
                response = await self.client.auth.refresh_session(session.refresh_token)
            except (AuthRetryableError, httpx.HTTPError) as exc:
                return f"failed: {_reason(exc)}"
            except AuthError as exc:
                return f"refused: {_reason(exc)}"
            if response.session is None:
                return "refused: no session returned"
            self._session = response.session
            # The client schedules set_auth by itself; awaiting it here means no channel
            # joins or rejoins with the old token once this returns.
            await self.client.realtime.set_auth(response.session.access_token)
            self.refreshes += 1
            log.debug("token refreshed, valid %.0f s", _seconds_left(response.session))
            return None

    async def _fresh_token(self) -> None:
        """Before a REST call: refresh first when the token is (about to be) expired."""
        session = self._session
        if session is not None and _seconds_left(session) <= EXPIRY_MARGIN_SECONDS:
            problem = await self._refresh_now(unless_fresh=True)
            if problem is not None:
                log.warning("token refresh before a request %s", problem)

    def _notify(self, level: Any, text: str) -> None:
        notice = Notice(level, text)
        for listener in list(self._notice_listeners):
            try:
                listener(notice)
            except Exception:
                log.exception("notice listener failed")

    # Tasks, as this user (RLS decides what is visible).

    async def submit(self, kind: str, params: dict[str, Any]) -> Task:
        """Insert a pending task owned by this user and return the stored row."""
        rows = await self.execute(
            self.client.table("tasks").insert({"kind": kind, "params": params}), "submit"
        )
        if not rows:
            raise RequestError("the new task was not returned by the server")
        task = Task.model_validate(rows[0])
        log.info("submitted task %s (%s)", task.id, kind)
        return task

    async def fetch(self, task_id: str) -> Task | None:
        """The task's current row, or None when this user cannot see it."""
        query = self.client.table("tasks").select("*").eq("id", task_id).limit(1)
        rows = await self.execute(query, "fetch")
        return Task.model_validate(rows[0]) if rows else None

    async def result(self, result_id: str) -> dict[str, Any] | None:
        """The payload of a task result, or None when it is missing or not visible."""
        query = self.client.table("task_results").select("payload").eq("id", result_id).limit(1)
        rows = await self.execute(query, "result")
        return rows[0].get("payload") if rows else None

    async def execute(self, query: Any, what: str) -> list[dict[str, Any]]:
        """Run a query or rpc built on ``client`` as the user, with a token fresh enough.

        Raises:
            RequestError: refused by the API (``what`` names the action) or unreachable.
        """
        await self._fresh_token()
        try:
            response = await query.execute()
        except APIError as exc:
            raise RequestError(f"{what} refused: {exc.message or exc.code}") from exc
        except httpx.HTTPError as exc:
            raise RequestError(f"{what} failed: {_reason(exc)}") from exc
        data = response.data
        if isinstance(data, dict):  # an rpc returning one composite row
            return [data]
        return list(data or [])

    async def close(self) -> None:
        """Stop refreshing, leave every channel and close the Realtime socket.

        The user stays signed in on the server, so a later `start(stored)` is the same user.
        """
        if self._closed:
            return
        self._closed = True
        if self._refresh_task is not None:
            self._refresh_task.cancel()
        self._auth_subscription.unsubscribe()
        try:
            await self.client.remove_all_channels()
        except Exception as exc:
            log.warning("closing realtime failed: %s", _reason(exc))
        await self.client.postgrest.aclose()
        await self.client.auth.close()


def _seconds_left(session: Session) -> float:
    """Seconds the access token is still valid, by the wall clock."""
    expires_at = session.expires_at or (time.time() + session.expires_in)
    return expires_at - time.time()


def _refresh_at(session: Session) -> float:
    """Wall-clock time to refresh: at about 80 % of the token's remaining life."""
    return time.time() + max(MIN_REFRESH_DELAY, _seconds_left(session) * 0.8)


async def _sleep_until(wall_time: float) -> None:
    """Sleep until a wall-clock time, re-reading the clock (the loop's clock stops in
    suspend, the wall clock does not)."""
    left = wall_time - time.time()
    while left > 0:
        await asyncio.sleep(min(left, CLOCK_CHECK_SECONDS))
        left = wall_time - time.time()


def _retry_delay(failures: int) -> float:
    return min(MAX_RETRY_DELAY, 2 ** (failures - 1)) * random.uniform(0.5, 1.0)


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message or type(exc).__name__
