"""Small pieces of the landing page: the status bar and the rendering of a result."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from ui import design
from ui.state import TaskState


def status_bar(state: TaskState) -> ui.card:
    """Status word with colour and icon, progress bar, message and connection indicator."""
    with ui.card().classes(design.CARD).mark("status-bar") as card:
        with ui.row().classes("w-full items-center no-wrap"):
            status = ui.chip(state.status, icon=state.status_icon, color=state.status_color)
            status.props("text-color=white square").classes("tl-status").mark("status")
            status.bind_text_from(state, "status")
            status.bind_icon_from(state, "status_icon")
            status.bind_background_color_from(state, "status_color")

            message = ui.label().classes("grow text-body1").mark("message")
            message.bind_text_from(state, "message")

            with ui.row().classes("items-center gap-1").mark("connection"):
                icon = ui.icon(state.connection_icon, color=state.connection_color)
                icon.bind_name_from(state, "connection_icon")
                icon.bind_text_color_from(state, "connection_color")
                ui.label().classes(design.MUTED).bind_text_from(state, "connection")

        progress = ui.linear_progress(value=state.progress, show_value=False, size="10px")
        progress.props("rounded animation-speed=300").mark("progress")
        progress.bind_value_from(state, "progress")
        progress.bind_visibility_from(state, "has_task")

        percent = ui.label().classes(design.MUTED).mark("percent")
        percent.bind_text_from(state, "progress_text")
        percent.bind_visibility_from(state, "has_task")

        problem = ui.label().classes("text-negative text-sm").mark("connection-error")
        problem.bind_text_from(state, "connection_error")
        problem.bind_visibility_from(state, "connection_error", backward=bool)
    return card


def failure_panel(state: TaskState) -> ui.card:
    """The reason a task failed; only visible while the active task is failed."""
    with ui.card().classes(f"{design.CARD} bg-red-1").mark("failure") as card:
        with ui.row().classes("items-center no-wrap"):
            ui.icon("error", color="negative", size="md")
            with ui.column().classes("gap-0"):
                ui.label("The task failed").classes(design.SECTION_TITLE)
                ui.label().classes("text-body1").mark("reason").bind_text_from(state, "error")
    card.bind_visibility_from(state, "is_failed")
    return card


def result_view(payload: dict[str, Any]) -> None:
    """Render a result dict: a summary line, scalar fields, then tables and nested values."""
    summary = payload.get("summary")
    if isinstance(summary, str):
        ui.label(summary).classes("text-body1 font-medium").mark("result-summary")

    scalars = {k: v for k, v in payload.items() if k != "summary" and _is_scalar(v)}
    if scalars:
        with ui.grid(columns=2).classes("gap-x-6 gap-y-1").mark("result-fields"):
            for key, value in scalars.items():
                ui.label(_title(key)).classes(design.MUTED)
                ui.label(_format(value))

    for key, value in payload.items():
        if key == "summary" or _is_scalar(value):
            continue
        ui.label(_title(key)).classes("text-subtitle2 q-mt-sm")
        if _is_table(value):
            columns = [{"name": c, "label": _title(c), "field": c} for c in value[0]]
            ui.table(columns=columns, rows=value).props("dense flat bordered").classes(
                "w-full"
            ).mark(f"result-{key}")
        else:
            ui.code(json.dumps(value, indent=2, ensure_ascii=False), language="json").classes(
                "w-full"
            )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_table(value: Any) -> bool:
    """A non-empty list of flat dicts that all have the same keys."""
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        return False
    keys = list(value[0])
    return all(
        isinstance(row, dict) and list(row) == keys and all(_is_scalar(v) for v in row.values())
        for row in value
    )


def _title(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)
