"""Toasts: human first letter, top right, short timeouts (no page needed)."""

from __future__ import annotations

from typing import Any

import pytest
from nicegui import ui

from ui.toast import toast


def test_toasts_sit_top_right_and_go_away(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(ui, "notify", lambda text, **kwargs: shown.append((text, kwargs)))

    toast("the task was not submitted (insert refused)", "negative")
    toast("asked the worker to stop the task")
    toast("cannot reach the task service", "negative", sticky=True)

    assert [text for text, _ in shown] == [
        "The task was not submitted (insert refused)",
        "Asked the worker to stop the task",
        "Cannot reach the task service",
    ]
    assert {kwargs["position"] for _, kwargs in shown} == {"top-right"}
    assert [kwargs["timeout"] for _, kwargs in shown] == [6000, 3000, 0]
