"""Viewers: one session and task context per browser, closed after its last tab."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from localbase.server import LocalbaseThread
from services.errors import ServiceError
from services.settings import Settings
from ui.viewers import ACTIVE_TASK_KEY, IDENTITY_KEY, Viewers

pytestmark = pytest.mark.integration


@pytest.fixture
def viewers(localbase: LocalbaseThread) -> Viewers:
    settings = Settings(
        supabase_url=localbase.url,
        supabase_publishable_key=SecretStr(localbase.keys.publishable_key),
    )
    return Viewers(settings)


async def test_tabs_of_one_browser_share_a_viewer_until_the_last_one_leaves(
    viewers: Viewers,
) -> None:
    storage: dict[str, Any] = {}
    first = await viewers.acquire("browser-a", storage)
    second = await viewers.acquire("browser-a", storage)
    task = await first.submit("demo", {"steps": 1, "step_seconds": 0})

    await viewers.release("browser-a")
    await second.context.set_task(task.id)  # the other tab still follows the task
    await viewers.release("browser-a")

    assert second is first
    with pytest.raises(RuntimeError, match="disposed"):
        await first.context.set_task(task.id)


async def test_a_new_viewer_for_the_same_storage_is_the_same_user_on_the_same_task(
    viewers: Viewers,
) -> None:
    storage: dict[str, Any] = {}
    viewer = await viewers.acquire("browser-b", storage)
    task = await viewer.submit("demo", {"steps": 1, "step_seconds": 0})
    user_id = viewer.session.user_id
    await viewers.release("browser-b")

    again = await viewers.acquire("browser-b", storage)

    try:
        assert again is not viewer
        assert again.session.user_id == user_id == storage[IDENTITY_KEY]["user_id"]
        assert again.context.task_id == task.id == storage[ACTIVE_TASK_KEY]["task_id"]
    finally:
        await viewers.release("browser-b")


async def test_browsers_get_different_users(viewers: Viewers) -> None:
    a = await viewers.acquire("browser-c", {})
    b = await viewers.acquire("browser-d", {})

    try:
        assert a.session.user_id != b.session.user_id
    finally:
        await viewers.close_all()


async def test_a_failed_sign_in_leaves_no_tab_counted() -> None:
    unreachable = Settings(
        supabase_url="http://127.0.0.1:9",
        supabase_publishable_key=SecretStr("sb_publishable_unused"),
    )
    viewers = Viewers(unreachable)

    with pytest.raises(ServiceError):
        await viewers.acquire("browser-a", {})

    assert viewers._tabs == {}
