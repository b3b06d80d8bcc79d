"""Toasts: short human sentences at the top right, so they never cover the result."""

from __future__ import annotations

import logging
from typing import Literal

from nicegui import ui

log = logging.getLogger(__name__)

ToastType = Literal["positive", "negative", "warning", "info", "ongoing"]
POSITION = "top-right"
# Milliseconds; errors stay a little longer so they can be read.
TIMEOUTS: dict[str, int] = {"negative": 6000, "warning": 4000}
DEFAULT_TIMEOUT = 3000


def toast(message: str, type: ToastType = "info", *, sticky: bool = False) -> None:
    """Show `message` (first letter upper-cased) top right; `sticky` keeps it until closed."""
    text = message[:1].upper() + message[1:]
    timeout = 0 if sticky else TIMEOUTS.get(type, DEFAULT_TIMEOUT)
    ui.notify(
        text, type=type, position=POSITION, timeout=timeout, close_button="OK" if sticky else False
    )
