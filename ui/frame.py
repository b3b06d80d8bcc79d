"""The page frames: the full header with a theme switch, and the bare frames of kiosk/embed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import app, ui

from ui import design

THEME_KEY = "dark"
SHARED_CSS = """
.tl-failure { background: rgba(198, 40, 40, 0.10); }
.q-uploader__subtitle, .q-uploader__list { display: none; }
.q-uploader { max-height: none; }
.tl-history-item.tl-active { background: rgba(53, 89, 168, 0.14); }
.body--dark .q-btn { --q-negative: #ff8a80; }
:focus-visible { outline: 3px solid #ffb300; outline-offset: 2px; }
"""


@contextmanager
def frame(subtitle: str) -> Iterator[ui.column]:
    """Header with the product name and a light/dark switch; yields the content column."""
    _shared_look()
    dark = ui.dark_mode(value=app.storage.user.get(THEME_KEY, False))

    def toggle() -> None:
        dark.value = not dark.value
        app.storage.user[THEME_KEY] = dark.value
        theme.props(f"icon={'light_mode' if dark.value else 'dark_mode'}")

    with ui.header().classes("items-center bg-primary"):
        ui.icon("lightbulb", size="sm")
        ui.label("Tasklight").classes("text-h6")
        ui.label(subtitle).classes("text-sm opacity-80 gt-xs")
        ui.space()
        theme = ui.button(icon="light_mode" if dark.value else "dark_mode", on_click=toggle)
        theme.props('flat round color=white aria-label="switch light or dark theme"')
        theme.tooltip("Light or dark theme").mark("theme")
    with ui.column().classes(f"{design.PAGE_WIDTH} gap-4 q-pa-md") as content:
        yield content


@contextmanager
def bare_frame(*, kiosk: bool = False, dark: bool | None = None) -> Iterator[ui.column]:
    """No header: the kiosk's large dark screen, or the compact body of an iframe."""
    _shared_look()
    if kiosk:
        ui.dark_mode(True)
        ui.add_css(design.KIOSK_CSS)
        ui.query("body").classes("tl-kiosk")
        classes = "w-full max-w-4xl mx-auto gap-6 q-pa-lg"
    else:
        ui.dark_mode(app.storage.user.get(THEME_KEY, False) if dark is None else dark)
        ui.query(".nicegui-content").classes("p-1")
        classes = "w-full gap-2 q-pa-xs"
    with ui.column().classes(classes) as content:
        yield content


def _shared_look() -> None:
    ui.colors(primary=design.PRIMARY)
    ui.add_css(SHARED_CSS)
