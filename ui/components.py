"""Pieces the pages share: the status bar, the failure and cancel panels, a result."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from ui import design, format
from ui.state import TaskState


def status_bar(state: TaskState, on_cancel: Callable[[], Awaitable[None]] | None = None) -> ui.card:
    """Status word with colour and icon, progress bar, message, timing, attempts, connection.

    With `on_cancel` a Cancel button shows while the task is pending or processing.
    """
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
        progress.bind_text_color_from(state, "progress_color")
        progress.bind_visibility_from(state, "has_task")

        with ui.row().classes("w-full items-center gap-x-4 gap-y-0") as details:
            details.bind_visibility_from(state, "has_task")
            percent = ui.label().classes(design.MUTED).mark("percent")
            percent.bind_text_from(state, "progress_text")
            percent.bind_visibility_from(state, "has_task")
            timing = ui.label().classes(design.MUTED).mark("timing")
            timing.bind_text_from(state, "timing_text")
            timing.bind_visibility_from(state, "stalled", backward=lambda stalled: not stalled)
            with ui.row().classes("items-center gap-1 no-wrap") as stalled:
                ui.icon("warning", color="orange-9", size="xs")
                note = ui.label().classes("text-sm text-orange-9").mark("stalled")
                note.bind_text_from(state, "timing_text")
            stalled.bind_visibility_from(state, "stalled")
            attempts = ui.label().classes(f"{design.MUTED} text-weight-medium").mark("attempts")
            attempts.bind_text_from(state, "attempts_text")
            ui.space()
            stopping = ui.label("stopping…").classes(design.MUTED).mark("stopping")
            stopping.bind_visibility_from(state, "cancel_requested")
            if on_cancel is not None:
                cancel = ui.button("Cancel", icon="stop", on_click=on_cancel)
                cancel.props("outline color=negative dense").mark("cancel")
                cancel.bind_visibility_from(state, "can_cancel")

        problem = ui.label().classes("text-negative text-sm").mark("connection-error")
        problem.bind_text_from(state, "connection_error")
        problem.bind_visibility_from(state, "connection_error", backward=bool)
    return card


def failure_panel(state: TaskState) -> ui.card:
    """The reason a task failed; only visible while the active task is failed."""
    with ui.card().classes(f"{design.CARD} tl-failure").mark("failure") as card:
        with ui.row().classes("items-center no-wrap"):
            ui.icon("error", color="negative", size="md")
            with ui.column().classes("gap-0"):
                ui.label("The task failed").classes(design.SECTION_TITLE)
                ui.label().classes("text-body1").mark("reason").bind_text_from(state, "error")
    card.bind_visibility_from(state, "is_failed")
    return card


def cancelled_panel(state: TaskState) -> ui.card:
    """Says that the active task was cancelled; only visible then."""
    with ui.card().classes(design.CARD).mark("cancelled") as card:
        with ui.row().classes("items-center no-wrap"):
            ui.icon("cancel", color="deep-orange-10", size="md")
            with ui.column().classes("gap-0"):
                ui.label("The task was cancelled").classes(design.SECTION_TITLE)
                note = ui.label().classes("text-body1").mark("cancel-note")
                note.bind_text_from(state, "cancel_note")
                note.bind_visibility_from(state, "cancel_note", backward=bool)
    card.bind_visibility_from(state, "is_cancelled")
    return card


def chart_view(chart: dict[str, Any], dark: bool = False) -> ui.echart:
    """A bar chart from a result's `chart` entry (title, labels, values, x_label)."""
    text_color = "#e0e0e0" if dark else "#333333"
    labels = [format.compact_label(label) for label in chart.get("labels", [])]
    # Short labels fit upright; long ones are turned a little rather than dropped.
    rotate = 0 if sum(len(label) for label in labels) <= 64 else 30
    options = {
        "title": {"text": chart.get("title", ""), "textStyle": {"color": text_color}},
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 48, "right": 16, "bottom": 56 if rotate == 0 else 72, "top": 48},
        "xAxis": {
            "type": "category",
            "data": labels,
            "name": chart.get("x_label", ""),
            "nameLocation": "middle",
            "nameGap": 32 if rotate == 0 else 56,
            "nameTextStyle": {"color": text_color},
            "axisLabel": {"rotate": rotate, "interval": 0, "color": text_color},
        },
        "yAxis": {
            "type": "value",
            "name": "count",
            "minInterval": 1,
            "nameTextStyle": {"color": text_color},
            "axisLabel": {"color": text_color},
        },
        "series": [
            {
                "type": "bar",
                "data": list(chart.get("values", [])),
                "itemStyle": {"color": design.PRIMARY},
            }
        ],
    }
    return ui.echart(options).classes("w-full h-80").mark("result-chart")


def _is_chart(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("labels"), list)
        and isinstance(value.get("values"), list)
    )


def result_loading() -> ui.row:
    """What the result card shows between `completed` and the arrival of its payload."""
    with ui.row().classes("items-center").mark("result-loading") as row:
        ui.spinner(size="sm")
        ui.label("loading result…").classes(design.MUTED)
    return row


def result_view(payload: dict[str, Any], dark: bool = False) -> None:
    """Render a result dict: a summary line, scalar fields, then tables and nested values.

    A table `KEY` with a whole-number `KEY_total` beside it is a sample of that many rows;
    the table then says "first N of TOTAL rows".
    """
    summary = payload.get("summary")
    if isinstance(summary, str):
        ui.label(summary).classes("text-body1 font-medium").mark("result-summary")

    totals = {f"{k}_total" for k, v in payload.items() if _is_table(v) or _is_column_table(v)}
    scalars = {
        k: v
        for k, v in payload.items()
        if k != "summary" and _is_scalar(v) and not (k in totals and _is_count(v))
    }
    if scalars:
        with ui.grid(columns=2).classes("gap-x-6 gap-y-1").mark("result-fields"):
            for key, value in scalars.items():
                ui.label(_title(key)).classes(design.MUTED)
                ui.label(_format(value))

    for key, value in payload.items():
        if key == "summary" or _is_scalar(value):
            continue
        if _is_chart(value):
            chart_view(value, dark)
            continue
        ui.label(_title(key)).classes("text-subtitle2 q-mt-sm")
        if _is_table(value) or _is_column_table(value):
            names = list(value["columns"]) if isinstance(value, dict) else list(value[0])
            rows = (
                [dict(zip(names, row, strict=True)) for row in value["rows"]]
                if isinstance(value, dict)
                else value
            )
            columns = [{"name": c, "label": _title(c), "field": c, "align": "left"} for c in names]
            total = payload.get(f"{key}_total")
            if _is_count(total) and total > len(rows):
                note = f"first {len(rows):,} of {total:,} rows"
                ui.label(note).classes(design.MUTED).mark(f"result-{key}-note")
            ui.table(columns=columns, rows=rows).props("dense flat bordered").classes(
                "w-full"
            ).mark(f"result-{key}")
        else:
            ui.code(json.dumps(value, indent=2, ensure_ascii=False), language="json").classes(
                "w-full"
            )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_table(value: Any) -> bool:
    """A non-empty list of flat dicts that all have the same keys."""
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        return False
    keys = list(value[0])
    return all(
        isinstance(row, dict) and list(row) == keys and all(_is_scalar(v) for v in row.values())
        for row in value
    )


def _is_column_table(value: Any) -> bool:
    """`{"columns": [names], "rows": [[values], ...]}` with rows as long as the names."""
    if not isinstance(value, dict) or set(value) != {"columns", "rows"}:
        return False
    names, rows = value["columns"], value["rows"]
    return (
        isinstance(names, list)
        and isinstance(rows, list)
        and all(isinstance(n, str) for n in names)
        and all(isinstance(r, list) and len(r) == len(names) for r in rows)
        and all(_is_scalar(v) for r in rows for v in r)
    )


def _title(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)
