"""The surfaces in real headless Chromium against one `main.py` on the embedded stack:
CSV upload to chart, cancel, switching tasks from the history, and the embed page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_live_page import REPO, App, _free_port, _stop, _wait_for_page, browser

pytestmark = [pytest.mark.browser, pytest.mark.integration]

__all__ = ["browser"]  # the fixture, re-used from the one-click test

CSV = "station,temperature\nnorth,3.5\nsouth,18\nharbour,20.5\nnorth,-1\nairport,12\n"
SUBMIT = "//button[.//span[normalize-space()='Submit']]"


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    """One `uv run main.py` for the module, with its data in a fresh temp dir."""
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    # Not under pytest's temp root, which a concurrent pytest resets to 0700 (Postgres runs
    # as the "pgserver" user when we are root and must reach its data dir).
    work = Path(tempfile.mkdtemp(prefix="tasklight-browser-"))
    port = _free_port()
    inherited = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env = {**inherited, "SUPABASE_URL": "", "SUPABASE_PUBLISHABLE_KEY": "",
           "SUPABASE_ANON_KEY": "", "SUPABASE_SECRET_KEY": "", "SUPABASE_SERVICE_ROLE_KEY": "",
           "NICEGUI_STORAGE_PATH": str(work / "nicegui")}  # fmt: skip
    command = ["uv", "run", "main.py", "--no-show", "--port", str(port),
               "--localbase-port", str(_free_port()), "--data-dir", str(work / "data")]  # fmt: skip
    log_path = work / "main.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    running = App(f"http://127.0.0.1:{port}", work / "data", process, log_path)
    try:
        _wait_for_page(running)
        yield running
    finally:
        _stop(running)
        shutil.rmtree(work, ignore_errors=True)


def _status(driver) -> str:
    from selenium.webdriver.common.by import By

    chips = driver.find_elements(By.CSS_SELECTOR, ".tl-status")
    words = [chip.text.strip().splitlines()[-1] for chip in chips if chip.text.strip()]
    return words[0] if words else ""


def _wait(driver, check, seconds: float, what: str, app: App) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, seconds, poll_frequency=0.1).until(
        lambda d: check(d), message=f"{what}; status {_status(driver)!r}\n{app.log_tail()}"
    )


def _open(driver, url: str, app: App, button: str = SUBMIT) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(ec.element_to_be_clickable((By.XPATH, button)))


def _set(driver, label: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.XPATH, f"//label[.//div[normalize-space()='{label}']]//input")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value)


def test_an_uploaded_csv_ends_in_a_chart(app: App, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    path = tmp_path / "stations.csv"
    path.write_text(CSV)
    _open(browser, f"{app.url}/", app)
    browser.find_element(By.XPATH, "//label[.//div[normalize-space()='Job']]").click()
    browser.find_element(By.XPATH, "//div[@role='option'][.//span[text()='CSV profile']]").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"), 10,
          "the upload field", app)  # fmt: skip

    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path))
    _wait(browser, lambda d: "stations.csv ·" in d.page_source, 20, "the file to upload", app)
    browser.find_element(By.XPATH, SUBMIT).click()

    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".nicegui-echart canvas"), 60,
          "the chart", app)  # fmt: skip
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "stations.csv: 5 rows × 2 columns" in body
    assert _status(browser) == "completed"


def test_cancel_stops_a_running_task(app: App, browser) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, f"{app.url}/", app)
    _set(browser, "Steps", "100")
    _set(browser, "Step seconds", "0.2")
    browser.find_element(By.XPATH, SUBMIT).click()
    _wait(browser, lambda d: _status(d) == "processing", 30, "the task to start", app)

    browser.find_element(By.XPATH, "//button[.//span[normalize-space()='Cancel']]").click()

    _wait(browser, lambda d: _status(d) == "cancelled", 30, "the task to end cancelled", app)
    assert "The task was cancelled" in browser.find_element(By.TAG_NAME, "body").text


def test_the_history_switches_the_active_task(app: App, browser) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, f"{app.url}/", app)
    _set(browser, "Steps", "1")
    _set(browser, "Step seconds", "0")
    browser.find_element(By.XPATH, SUBMIT).click()
    _wait(browser, lambda d: _status(d) == "completed", 30, "the first task", app)
    _set(browser, "Fail at step (optional)", "1")
    browser.find_element(By.XPATH, SUBMIT).click()
    _wait(browser, lambda d: _status(d) == "failed", 30, "the second task", app)
    rows = ".tl-history-item"
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 2, 10, "2 rows", app)

    browser.find_elements(By.CSS_SELECTOR, rows)[1].click()  # the older, completed one

    _wait(browser, lambda d: _status(d) == "completed", 20, "the first task again", app)
    _wait(browser, lambda d: "1 step done" in d.page_source, 20, "its result", app)


def test_the_embed_page_runs_a_task_without_chrome(app: App, browser) -> None:
    from selenium.webdriver.common.by import By

    button = "//button[.//span[contains(normalize-space(), 'Run Demo')]]"
    _open(browser, f"{app.url}/embed?kind=demo&steps=2&step_seconds=0.2", app, button)
    assert not browser.find_elements(By.CSS_SELECTOR, ".q-header")

    browser.find_element(By.XPATH, button).click()

    _wait(browser, lambda d: _status(d) == "completed", 30, "the embedded task", app)
    _wait(browser, lambda d: "2 steps done" in d.page_source, 10, "the summary", app)
