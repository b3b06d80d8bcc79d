"""The landing page under NiceGUI's simulated user, wired to the session's localbase.

NiceGUI's stock ``user`` fixture lives in ``nicegui.testing.user_plugin``, which can only
be enabled from the top-level conftest or the pytest options. This package builds the same
fixture from NiceGUI's public ``user_simulation`` so it needs neither.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from nicegui import app
from nicegui.storage import Storage
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from localbase.server import LocalbaseThread

MAIN_FILE = Path(__file__).resolve().parents[2] / "main.py"


@pytest.fixture(scope="session", autouse=True)
def _nicegui_storage() -> Iterator[None]:
    """Keep NiceGUI's per-browser storage in a temp dir instead of ./.nicegui."""
    path = Path(tempfile.mkdtemp(prefix="tasklight-ui-storage-"))
    Storage.path = path
    app.storage = Storage()
    yield
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def project_env(localbase: LocalbaseThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point main.py at the session's localbase, with a secret key so a worker runs too."""
    for name in ("SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUPABASE_URL", localbase.url)
    monkeypatch.setenv("SUPABASE_PUBLISHABLE_KEY", localbase.keys.publishable_key)
    monkeypatch.setenv("SUPABASE_SECRET_KEY", localbase.keys.secret_key)
    monkeypatch.setenv("TASKLIGHT_STORAGE_SECRET", "tasklight ui tests")
    monkeypatch.setenv("TASKLIGHT_KIOSK_RESET", "2")


@pytest.fixture
async def user(project_env: None, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    """A simulated browser on the app as main.py builds it (fails on ERROR logs)."""
    async with user_simulation(main_file=MAIN_FILE) as simulated:
        yield simulated

    errors = [r for r in caplog.get_records("call") if r.levelname == "ERROR"]
    if errors:
        pytest.fail(f"unexpected ERROR logs: {[r.getMessage() for r in errors]}", pytrace=False)


async def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``check`` (the test's view of the page) until true; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)
