"""The viewer's recent tasks: status, kind, relative time; click to watch, re-run finished."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from nicegui import ui

from services.models import Task
from ui import design, format

TaskAction = Callable[[str], Awaitable[None]]


class HistoryList:
    """A card listing tasks newest first; `show()` redraws it with new rows."""

    def __init__(self, on_select: TaskAction, on_rerun: TaskAction) -> None:
        self.on_select = on_select
        self.on_rerun = on_rerun
        self.tasks: list[Task] | None = None  # None: not loaded yet
        self.active_id: str | None = None
        self.error = ""
        with ui.card().classes(design.CARD).mark("history") as self.card:
            with ui.row().classes("w-full items-center"):
                ui.label("History").classes(design.SECTION_TITLE)
                ui.space()
                ui.label("newest first").classes(design.MUTED)
            self._body()

    def show(self, tasks: list[Task] | None, active_id: str | None, error: str = "") -> None:
        self.tasks, self.active_id, self.error = tasks, active_id, error
        self._body.refresh()

    @ui.refreshable_method
    def _body(self) -> None:
        if self.error:
            ui.label(f"Could not load the history: {self.error}").classes("text-negative text-sm")
        if self.tasks is None:
            with ui.row().classes("items-center"):
                ui.spinner(size="sm")
                ui.label("Loading…").classes(design.MUTED)
            return
        if not self.tasks:
            ui.label("No tasks yet. Submitted tasks appear here.").classes(design.MUTED).mark(
                "history-empty"
            )
            return
        now = datetime.now(UTC)
        with ui.list().props("separator").classes("w-full").mark("history-list"):
            for task in self.tasks:
                self._row(task, now)

    def _row(self, task: Task, now: datetime) -> None:
        look = design.STATUS_LOOKS.get(task.status.value, design.NO_TASK_LOOK)
        active = task.id == self.active_id
        item = ui.item(on_click=lambda t=task: self.on_select(t.id))
        item.classes("tl-history-item" + (" tl-active" if active else "")).mark("history-item")
        # Row data goes in as a plain value, never through the props string parser.
        item.props["aria-label"] = f"watch {task.kind} task, {task.status.value}"
        with item:
            with ui.item_section().props("avatar"):
                ui.icon(look.icon, color=look.color).tooltip(task.status.value)
            with ui.item_section():
                title = ui.item_label(f"{task.kind} · {task.status.value}")
                title.classes("text-weight-medium").mark("history-title")
                ui.item_label(_detail(task, now)).props("caption")
            if task.status.is_terminal:
                with ui.item_section().props("side"):
                    # `.stop` keeps the click from also selecting the row.
                    rerun = ui.button(icon="replay")
                    rerun.on("click.stop", lambda _, t=task: self.on_rerun(t.id))
                    rerun.props("flat round dense")
                    rerun.props["aria-label"] = f"re-run this {task.kind} task"
                    rerun.tooltip("Run again with the same parameters").mark("rerun")


def _detail(task: Task, now: datetime) -> str:
    parts = [format.relative(task.created_at, now)]
    if task.status.value == "processing":
        parts.append(f"{task.progress} %")
    if task.attempts > 1:
        parts.append(f"attempt {task.attempts} of {task.max_attempts}")
    if task.started_at and task.finished_at:
        parts.append(format.duration((task.finished_at - task.started_at).total_seconds()))
    return " · ".join(part for part in parts if part)
