"""`main.py --native` under a virtual X display: the window shows the page, and when the
window goes away the app stops, embedded Postgres included.

Skipped, with the reason, without Xvfb or without the `native` extra (pywebview + PyQt6).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_live_page import _free_port

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
GRAB = Path(__file__).with_name("grab_screen.py")
SCREEN = "1280x900x24"
START_SECONDS = 120
RENDER_SECONDS = 60
STOP_SECONDS = 60
MIN_COLOURS = 12  # a blank or one-colour screen has 1-2


def _needs() -> str | None:
    if shutil.which("Xvfb") is None:
        return "needs Xvfb (apt-get install xvfb); .ci/run installs it"
    for module in ("webview", "PyQt6", "qtpy"):
        if importlib.util.find_spec(module) is None:
            return f"needs the native extra ({module} missing): uv sync --extra native"
    if importlib.util.find_spec("PyQt6.QtWebEngineWidgets") is None:
        return "needs PyQt6-WebEngine: uv sync --extra native"
    return None


@pytest.fixture
def display() -> Iterator[str]:
    """A private Xvfb display, stopped afterwards."""
    reason = _needs()
    if reason:
        pytest.skip(reason)
    number = 90 + os.getpid() % 100
    name = f":{number}"
    xvfb = subprocess.Popen(
        ["Xvfb", name, "-screen", "0", SCREEN, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if xvfb.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"Xvfb could not start on display {name}")
            time.sleep(0.1)
        yield name
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def _window_processes(group: int) -> list[int]:
    """pids in the app's process group that run pywebview (multiprocessing's spawn child)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            pgrp = int(stat.rsplit(")", 1)[1].split()[2])
            cmdline = (entry / "cmdline").read_bytes()
            if pgrp == group and b"multiprocessing" in cmdline:
                found.append(int(entry.name))
    return found


def _grab(display: str, path: Path) -> int:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    done = subprocess.run(
        [sys.executable, str(GRAB), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


def test_native_window_shows_the_page_and_closing_it_stops_the_app(
    display: str, tmp_path: Path
) -> None:
    # Not under pytest's temp root: a concurrent pytest run resets that root to 0700, which
    # locks out the "pgserver" user that runs Postgres when we are root.
    data_dir = Path(tempfile.mkdtemp(prefix="tasklight-native-")) / "data"
    log_path = tmp_path / "main.log"
    shot = tmp_path / "native.png"
    port = _free_port()
    inherited = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env = {
        **inherited,
        "DISPLAY": display,
        "SUPABASE_URL": "",
        "SUPABASE_PUBLISHABLE_KEY": "",
        "SUPABASE_ANON_KEY": "",
        "SUPABASE_SECRET_KEY": "",
        "SUPABASE_SERVICE_ROLE_KEY": "",
        "NICEGUI_STORAGE_PATH": str(tmp_path / "nicegui"),
    }
    command = [
        sys.executable, "main.py", "--native", "--port", str(port),
        "--localbase-port", str(_free_port()), "--data-dir", str(data_dir), "--log-level", "debug",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        app = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def tail() -> str:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])

    try:
        deadline = time.monotonic() + START_SECONDS
        while not _window_processes(app.pid):
            assert app.poll() is None, f"main.py exited with {app.returncode}:\n{tail()}"
            assert time.monotonic() < deadline, f"no window process:\n{tail()}"
            time.sleep(0.5)

        colours = 0
        deadline = time.monotonic() + RENDER_SECONDS
        while colours < MIN_COLOURS and time.monotonic() < deadline:
            time.sleep(2)
            colours = _grab(display, shot)
        assert colours >= MIN_COLOURS, f"the screen stayed blank ({colours} colours):\n{tail()}"
        artifacts = os.environ.get("TASKLIGHT_SCREENSHOT_DIR")
        if artifacts:
            shutil.copy(shot, Path(artifacts) / "native.png")

        postmaster = data_dir / "pgdata" / "postmaster.pid"
        assert postmaster.exists()
        for pid in _window_processes(app.pid):  # the person closes the window
            os.kill(pid, signal.SIGTERM)
        app.wait(STOP_SECONDS)
        assert not postmaster.exists(), f"postgres still running after the window closed:\n{tail()}"
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGKILL)
            app.wait()
        shutil.rmtree(data_dir.parent, ignore_errors=True)
