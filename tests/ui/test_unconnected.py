"""A page fetched without a websocket (curl, a prefetch) is pruned later without errors."""

from __future__ import annotations

import asyncio
import logging
import re

import httpx
import pytest
from nicegui.app.app import prune_user_storage
from nicegui.client import Client
from nicegui.testing.user import User

from tests.ui.conftest import wait_until
from tests.ui.test_landing import _one, _ready, _status

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", ["/", "/kiosk", "/embed?kind=demo"])
async def test_a_fetched_page_that_never_connects_is_pruned_without_errors(
    user: User, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    transport = user.http_client._transport  # the app in-process, like the user's own client
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as curl:
        response = await curl.get(path)
    assert response.status_code == 200
    match = re.search(r"'client_id': '([0-9a-f-]+)'", response.text)
    assert match is not None
    client = Client.instances[match.group(1)]
    assert not client.has_socket_connection

    # What NiceGUI's housekeeping does after a minute: delete the client, drop its storage.
    client.delete()
    await prune_user_storage(force=True)
    await asyncio.sleep(0.5)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_a_fetched_page_of_the_same_browser_leaves_the_live_tab_signed_in(
    user: User, caplog: pytest.LogCaptureFixture
) -> None:
    """curl with the live tab's cookie: deleting that page later must not close the session."""
    await user.open("/")
    await _ready(user)
    response = await user.http_client.get("/")  # the same browser: the tab's session cookie
    match = re.search(r"'client_id': '([0-9a-f-]+)'", response.text)
    assert match is not None
    fetched = Client.instances[match.group(1)]
    assert fetched is not user.client and not fetched.has_socket_connection

    fetched.delete()
    await asyncio.sleep(0.5)

    _one(user, "steps").value = 1  # type: ignore[attr-defined]
    _one(user, "step_seconds").value = 0  # type: ignore[attr-defined]
    user.find(marker="submit").click()
    await wait_until(lambda: _status(user) == "completed", 30, "the live tab's task")
    errors = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "session" in r.getMessage()
    ]
    assert not errors, [r.getMessage() for r in errors]
