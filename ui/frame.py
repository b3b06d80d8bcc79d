"""The shared page frame: header with the product name, a centred content column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui

from ui import design


@contextmanager
def frame(subtitle: str) -> Iterator[ui.column]:
    """Draw the header and yield the content column."""
    ui.colors(primary="#3559a8")
    with ui.header().classes("items-center bg-primary"):
        ui.icon("lightbulb", size="sm")
        ui.label("Tasklight").classes("text-h6")
        ui.label(subtitle).classes("text-sm opacity-80")
    with ui.column().classes(f"{design.PAGE_WIDTH} gap-4 q-pa-md") as content:
        yield content
