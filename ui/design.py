"""Colours, icons and class strings shared by the pages (keep them here, not in the layout)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Look:
    """How one status or connection state is shown: a Quasar colour and a Material icon."""

    color: str
    icon: str


STATUS_LOOKS: dict[str, Look] = {
    "pending": Look("blue-grey", "hourglass_empty"),
    "processing": Look("primary", "autorenew"),
    "completed": Look("positive", "check_circle"),
    "failed": Look("negative", "error"),
    "cancelled": Look("warning", "cancel"),
}
NO_TASK_LOOK = Look("grey-5", "radio_button_unchecked")

# Keyed by services.models.ConnectionState values; anything unknown is shown as "idle".
CONNECTION_LOOKS: dict[str, Look] = {
    "idle": Look("grey-6", "cloud_off"),
    "connecting": Look("warning", "cloud_sync"),
    "live": Look("positive", "cloud_done"),
    "reconnecting": Look("warning", "cloud_sync"),
    "error": Look("negative", "cloud_off"),
}

PAGE_WIDTH = "w-full max-w-2xl mx-auto"
CARD = "w-full"
SECTION_TITLE = "text-lg font-medium"
MUTED = "text-sm text-grey-7"
