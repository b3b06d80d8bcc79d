"""The real app in real headless Chromium: `uv run main.py` on the embedded stack.

Starts the command a user runs (with free ports and a temp data dir), clicks Submit once
and watches the status change to `completed` in the same page load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)
START_SECONDS = 180
STOP_SECONDS = 60


@dataclass
class App:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_page(app: App) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            pytest.fail(f"main.py exited with {app.process.returncode}:\n{app.log_tail()}")
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(app.url, timeout=5) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    pytest.fail(f"the page was not served within {START_SECONDS} s:\n{app.log_tail()}")


def _stop(app: App) -> None:
    """SIGTERM, as a service manager would; a forced kill only if it hangs."""
    if app.process.poll() is None:
        app.process.send_signal(signal.SIGTERM)
        try:
            app.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(app.process.pid, signal.SIGKILL)
            app.process.wait()
            pytest.fail(f"main.py did not stop on SIGTERM:\n{app.log_tail()}")


@pytest.fixture
def running_app() -> Iterator[App]:
    """`uv run main.py --no-show` on free ports, embedded stack in a temp dir."""
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    port, localbase_port = _free_port(), _free_port()
    # Not pytest's tmp_path: concurrent runs prune its base dir under Postgres' feet.
    work = Path(tempfile.mkdtemp(prefix="tasklight-live-"))
    data_dir = work / "data"
    log_path = work / "main.log"
    # NiceGUI takes PYTEST_CURRENT_TEST as "running inside pytest" and changes ui.run().
    inherited = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env = {
        **inherited,
        # Empty values beat a developer's .env, so the embedded stack is used.
        "SUPABASE_URL": "",
        "SUPABASE_PUBLISHABLE_KEY": "",
        "SUPABASE_ANON_KEY": "",
        "SUPABASE_SECRET_KEY": "",
        "SUPABASE_SERVICE_ROLE_KEY": "",
    }
    command = [
        "uv", "run", "main.py", "--no-show",
        "--port", str(port),
        "--localbase-port", str(localbase_port),
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    app = App(f"http://127.0.0.1:{port}/", data_dir, process, log_path)
    try:
        _wait_for_page(app)
        yield app
    finally:
        _stop(app)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[object]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "needs the Debian packages chromium and chromium-driver "
            "(/usr/bin/chromium, /usr/bin/chromedriver); .ci/run installs them"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_one_click_shows_the_demo_task_completing_live(running_app: App, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(running_app.url)
    submit = WebDriverWait(browser, 30).until(
        ec.element_to_be_clickable((By.XPATH, "//button[.//span[normalize-space()='Submit']]"))
    )
    browser.execute_script("window.tasklightPageLoad = 'first';")

    submit.click()

    seen: list[str] = []

    def status_is_completed(driver) -> bool:
        # The chip's text is its icon's ligature name, a line break, then the status word.
        chips = driver.find_elements(By.CSS_SELECTOR, ".tl-status")
        words = [chip.text.strip().splitlines()[-1] for chip in chips if chip.text.strip()]
        if words and (not seen or seen[-1] != words[0]):
            seen.append(words[0])
        return words == ["completed"]

    WebDriverWait(browser, 60, poll_frequency=0.1).until(
        status_is_completed, message=f"statuses seen: {seen}\n{running_app.log_tail()}"
    )
    assert "processing" in seen, seen
    # The result is read after `completed` arrives: wait for it (the card says
    # "loading result…" meanwhile), not for a fixed time.
    WebDriverWait(browser, 20, poll_frequency=0.1).until(
        lambda driver: "5 steps done" in driver.find_element(By.TAG_NAME, "body").text,
        message=f"no result text:\n{running_app.log_tail()}",
    )
    assert browser.execute_script("return window.tasklightPageLoad") == "first"
    # The browser's identity (its refresh token) is stored privately in the data dir.
    storage = running_app.data_dir / "ui-storage"
    assert storage.stat().st_mode & 0o777 == 0o700
    assert list(storage.glob("storage-user-*.json"))


def test_sigterm_stops_the_embedded_postgres(running_app: App) -> None:
    postmaster_pid = running_app.data_dir / "pgdata" / "postmaster.pid"
    assert postmaster_pid.exists()

    _stop(running_app)

    # uvicorn re-raises SIGTERM after its graceful shutdown, so uv reports 128 + 15.
    assert running_app.process.returncode in (0, 143, -signal.SIGTERM), running_app.log_tail()
    assert not postmaster_pid.exists(), running_app.log_tail()
