"""Colours, icons and class strings shared by the pages (keep them here, not in the layout).

Status colours are dark enough for white text (WCAG AA contrast of 4.5:1 or more) and every
status also has its own icon and word, so colour is never the only signal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Look:
    """How one status or connection state is shown: a Quasar colour and a Material icon."""

    color: str
    icon: str


STATUS_LOOKS: dict[str, Look] = {
    "pending": Look("blue-grey-8", "hourglass_empty"),
    "processing": Look("primary", "autorenew"),
    "completed": Look("green-9", "check_circle"),
    "failed": Look("red-9", "error"),
    "cancelled": Look("deep-orange-10", "cancel"),
}
NO_TASK_LOOK = Look("grey-8", "radio_button_unchecked")

# Keyed by services.models.ConnectionState values; anything unknown is shown as "idle".
# "done" is the page's own word for an idle channel after the task finished (nothing to follow).
CONNECTION_LOOKS: dict[str, Look] = {
    "idle": Look("grey-7", "cloud_queue"),
    "done": Look("grey-7", "check"),
    "connecting": Look("orange-9", "cloud_sync"),
    "live": Look("green-8", "cloud_done"),
    "reconnecting": Look("orange-9", "cloud_sync"),
    "error": Look("red-9", "cloud_off"),
}

PRIMARY = "#3559a8"
PAGE_WIDTH = "w-full max-w-6xl mx-auto"
MAIN_COLUMN = "w-full lg:w-7/12 gap-4"
SIDE_COLUMN = "w-full lg:w-4/12 grow gap-4"
CARD = "w-full"
SECTION_TITLE = "text-lg font-medium"
MUTED = "text-sm opacity-70"
KIOSK_CSS = """
body.tl-kiosk { font-size: 1.5rem; }
body.tl-kiosk .q-field__label, body.tl-kiosk .q-field__native,
body.tl-kiosk .q-btn, body.tl-kiosk .q-chip { font-size: 1.4rem; }
body.tl-kiosk .tl-status { font-size: 2rem; padding: 1.6rem 1.2rem; }
body.tl-kiosk .text-body1 { font-size: 1.8rem; }
body.tl-kiosk .text-sm, body.tl-kiosk .text-xs { font-size: 1.2rem; }
body.tl-kiosk .q-field__bottom { font-size: 1rem; }
body.tl-kiosk .tl-task-id { display: none; }
"""
