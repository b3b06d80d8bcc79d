"""Settings key selection and secrecy; tolerant parsing and version ordering of task rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.models import ConnectionState, Task, TaskStatus, TaskView, parse_timestamp
from services.settings import Settings

ENV_NAMES = (
    "SUPABASE_URL",
    "SUPABASE_PUBLISHABLE_KEY",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SECRET_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_new_style_keys_win_over_legacy_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("SUPABASE_ANON_KEY", "anon")
    monkeypatch.setenv("SUPABASE_PUBLISHABLE_KEY", "sb_publishable_x")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service")
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "sb_secret_y")

    settings = Settings()

    assert settings.public_key == "sb_publishable_x"
    assert settings.secret_key == "sb_secret_y"
    assert settings.is_configured


def test_legacy_keys_are_used_when_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("SUPABASE_ANON_KEY", "anon")

    settings = Settings()

    assert settings.public_key == "anon"
    assert settings.secret_key is None


def test_nothing_configured_means_not_configured() -> None:
    assert not Settings().is_configured


def test_a_dot_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SUPABASE_URL=http://x\nSUPABASE_ANON_KEY=k\n")

    assert Settings().is_configured


def test_keys_never_appear_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "sb_secret_very_private")
    monkeypatch.setenv("SUPABASE_ANON_KEY", "eyJ.anon.key")

    text = repr(Settings()) + str(Settings())

    assert "very_private" not in text and "eyJ.anon" not in text


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-15T10:20:30.5+00:00",
        "2025-01-15T10:20:30.500Z",
        "2025-01-15 10:20:30.5+00",
        "2025-01-15T10:20:30.500000",
        "2025-01-15T12:20:30.5+02:00",
    ],
)
def test_timestamps_from_rest_and_realtime_parse_alike(text: str) -> None:
    assert parse_timestamp(text) == datetime(2025, 1, 15, 10, 20, 30, 500000, tzinfo=UTC)


def test_an_unreadable_timestamp_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp("yesterday")


def test_newer_versions_replace_older_ones_only() -> None:
    old = Task(id="a", kind="demo", updated_at="2025-01-01T00:00:01Z")
    new = Task(id="a", kind="demo", updated_at="2025-01-01T00:00:01.000001Z")

    assert new.is_newer_than(old)
    assert not old.is_newer_than(new)
    assert not new.is_newer_than(new)
    assert new.is_newer_than(None)


def test_the_view_derives_flags_from_the_status() -> None:
    task = Task(id="a", kind="demo", status=TaskStatus.FAILED, error_message="boom", progress=40)

    view = TaskView.build("a", task, ConnectionState.IDLE, error="ignored")

    assert view.is_failed and view.is_terminal and not view.is_active
    assert view.error == "boom"
    assert view.progress == 40


def test_the_view_shows_a_connection_problem_while_the_task_runs() -> None:
    task = Task(id="a", kind="demo", status=TaskStatus.PROCESSING)

    view = TaskView.build("a", task, ConnectionState.ERROR, error="socket closed")

    assert view.is_processing and view.is_active
    assert view.error == "socket closed"
    assert view.connection == ConnectionState.ERROR
