"""main.py's command line: help, one-line errors, and `localbase` printing its settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import main

REPO = Path(__file__).resolve().parents[2]
SETTING_NAMES = [
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_PUBLISHABLE_KEY",
    "SUPABASE_SECRET_KEY",
]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No Supabase settings from the environment or a .env (the cwd is a temp dir)."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_help_explains_the_commands_and_the_environment(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--help"])

    text = capsys.readouterr().out
    assert exit_info.value.code == 0
    for word in ("run", "worker", "localbase", ".env", *SETTING_NAMES):
        assert word in text


def test_options_without_a_command_mean_run() -> None:
    args = main.build_parser().parse_args(main._with_default_command(["--no-show", "--port", "1"]))

    assert (args.command, args.no_show, args.port) == ("run", True, 1)


def test_a_busy_port_is_one_line_and_exit_status_1(
    clean_env: Path, capsys: pytest.CaptureFixture
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        status = main.main(["run", "--no-show", "--port", str(port), "--data-dir", str(clean_env)])

    err = capsys.readouterr().err.strip()
    assert status == 1
    assert err == (
        f"tasklight: cannot listen on 127.0.0.1:{port} (Address already in use); "
        "choose another port with --port"
    )


def test_a_data_dir_below_a_file_is_refused(clean_env: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = clean_env / "a-file"
    blocker.write_text("")

    status = main.main(["localbase", "--data-dir", str(blocker / "data")])

    assert status == 1
    assert capsys.readouterr().err.startswith(f"tasklight: cannot use data dir {blocker}/data")


def test_the_worker_without_a_secret_key_starts_nothing_and_says_why(
    clean_env: Path, capsys: pytest.CaptureFixture
) -> None:
    status = main.main(["worker"])

    assert status == 1
    assert "needs SUPABASE_URL and SUPABASE_SECRET_KEY" in capsys.readouterr().err


@pytest.mark.integration
def test_localbase_prints_its_settings_first_and_stops_postgres_on_sigterm(
    clean_env: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data_dir = clean_env / "data"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    command = [sys.executable, str(REPO / "main.py"), "localbase", "--port", str(port),
               "--data-dir", str(data_dir)]  # fmt: skip
    process = subprocess.Popen(command, cwd=clean_env, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip("\n") for _ in SETTING_NAMES]
        assert [line.split("=", 1)[0] for line in lines] == SETTING_NAMES
        assert lines[0] == f"SUPABASE_URL=http://127.0.0.1:{port}"
        assert lines[3].startswith("SUPABASE_PUBLISHABLE_KEY=sb_publishable_")
        assert (data_dir / "pgdata" / "postmaster.pid").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(60)

    assert status == 0
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_native_without_the_extra_says_what_to_install(
    clean_env: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "native_available", lambda: False)

    status = main.main(["run", "--native", "--data-dir", str(clean_env)])

    assert status == 1
    assert "uv sync --extra native" in capsys.readouterr().err


def test_native_without_a_display_is_one_line_and_exit_status_1(
    clean_env: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "native_available", lambda: True)
    monkeypatch.setattr(main.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    status = main.main(["run", "--native", "--data-dir", str(clean_env)])

    assert status == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tasklight: the native window needs a display")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "display", "expected"),
    [
        (["--kiosk"], ":0", True),
        (["--kiosk", "--no-show"], ":0", False),
        (["--kiosk"], None, False),
        (["--native"], ":0", True),
        ([], ":0", False),
    ],
)
def test_the_kiosk_opens_a_native_window_only_with_a_display_and_without_no_show(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], display: str | None, expected: bool
) -> None:
    monkeypatch.setattr(main, "native_available", lambda: True)
    monkeypatch.setattr(main.sys, "platform", "linux")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display is None:
        monkeypatch.delenv("DISPLAY", raising=False)
    else:
        monkeypatch.setenv("DISPLAY", display)
    args = main.build_parser().parse_args(["run", *argv])

    assert main.wants_native(args) is expected


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--kiosk-kind", "nope"], "--kiosk-kind 'nope' is not a job kind; known: demo, csv"),
        (["--kiosk-reset", "-1"], "--kiosk-reset must be 0 or more seconds"),
        (["--kiosk-reset", "nan"], "--kiosk-reset must be 0 or more seconds"),
        (["--kiosk-reset", "inf"], "--kiosk-reset must be 0 or more seconds"),
        (["--root-path", "tasklight"], "--root-path 'tasklight' must start with /"),
        (["--root-path", "//evil.example"], "--root-path '//evil.example' must be a path like"),
        (["--root-path", "http://evil.example/x"], "must start with /"),
        (["--root-path", "/a//b"], "--root-path '/a//b' must be a path like"),
        (["--root-path", "/a/../b"], "must be a path like"),
        (["--root-path", "/a?x=1"], "must be a path like"),
    ],
)
def test_surface_options_are_checked_before_anything_starts(
    clean_env: Path, capsys: pytest.CaptureFixture, option: list[str], message: str
) -> None:
    status = main.main(["run", "--no-show", *option, "--data-dir", str(clean_env)])

    assert status == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "used"),
    [("", ""), ("/", ""), ("/tasklight/", "/tasklight"), ("/a/b-c.d//", "/a/b-c.d")],
)
def test_the_root_path_loses_its_trailing_slashes(given: str, used: str) -> None:
    assert main.normalize_root_path(given) == used


def test_a_bad_option_is_one_line(clean_env: Path, capsys: pytest.CaptureFixture) -> None:
    status = main.main(["run", "--no-show", "--root-path", "//evil.example"])

    assert status == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("host", ["256.1.1.1", "no such host.invalid"])
def test_an_invalid_host_is_blamed_on_the_host_not_the_port(
    host: str, clean_env: Path, capsys: pytest.CaptureFixture
) -> None:
    status = main.main(["run", "--no-show", "--host", host, "--data-dir", str(clean_env)])

    err = capsys.readouterr().err.strip()
    assert status == 1
    assert err == (
        f"tasklight: cannot listen on {host!r}: not an IP address or a known host name; "
        "choose another address with --host"
    )


def test_a_host_of_another_machine_is_explained(
    clean_env: Path, capsys: pytest.CaptureFixture
) -> None:
    status = main.main(["run", "--no-show", "--host", "192.0.2.1", "--data-dir", str(clean_env)])

    err = capsys.readouterr().err.strip()
    assert status == 1
    assert err.startswith("tasklight: cannot listen on 192.0.2.1: not an address of this machine")
    assert err.endswith("choose another address with --host")
    assert "--port" not in err


def test_run_keeps_the_browsers_storage_private_in_the_data_dir(
    clean_env: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hosted mode (SUPABASE_URL set; unreachable here, so run stops after the set-up)."""
    from nicegui import app
    from nicegui.storage import Storage

    monkeypatch.setattr(Storage, "path", Storage.path)  # restored after the test
    monkeypatch.setattr(app, "storage", app.storage)
    monkeypatch.setenv("NICEGUI_STORAGE_PATH", "unused")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    monkeypatch.setenv("SUPABASE_URL", f"http://127.0.0.1:{dead_port}")
    monkeypatch.setenv("SUPABASE_PUBLISHABLE_KEY", "sb_publishable_x")
    data_dir = clean_env / "data"
    storage = data_dir / "ui-storage"
    storage.mkdir(parents=True, mode=0o755)
    storage.chmod(0o755)  # an existing, too open directory is tightened

    status = main.main(["run", "--no-show", "--port", "0", "--data-dir", str(data_dir)])

    assert status == 1
    assert "cannot reach the supabase project" in capsys.readouterr().err
    assert storage.stat().st_mode & 0o777 == 0o700
    assert Storage.path == storage
    assert os.environ["NICEGUI_STORAGE_PATH"] == str(storage)
    assert not (clean_env / ".nicegui").exists()


def test_the_localbase_data_dir_help_does_not_mention_the_ui(
    capsys: pytest.CaptureFixture,
) -> None:
    with pytest.raises(SystemExit):
        main.main(["localbase", "--help"])
    stack_help = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main.main(["run", "--help"])
    run_help = capsys.readouterr().out

    assert "storage" not in stack_help
    assert "per-browser storage" in " ".join(run_help.split())


def test_a_bad_kiosk_reset_in_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TASKLIGHT_KIOSK_RESET", "soon")

    with pytest.raises(SystemExit) as exit_info:
        main.build_parser().parse_args(["run"])

    assert exit_info.value.code == 2
    assert "invalid float value: 'soon'" in capsys.readouterr().err
