"""Short human texts for times and durations, as the pages show them."""

from __future__ import annotations

from datetime import datetime

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def duration(seconds: float) -> str:
    """`4 s`, `2 min 05 s`, `1 h 02 min`."""
    whole = max(0, round(seconds))
    if whole < MINUTE:
        return f"{whole} s"
    if whole < HOUR:
        return f"{whole // MINUTE} min {whole % MINUTE:02d} s"
    return f"{whole // HOUR} h {whole % HOUR // MINUTE:02d} min"


def relative(moment: datetime | None, now: datetime) -> str:
    """`just now`, `40 s ago`, `5 min ago`, `3 h ago`, `yesterday`, else the date."""
    if moment is None:
        return ""
    seconds = (now - moment).total_seconds()
    if seconds < 5:
        return "just now"
    if seconds < MINUTE:
        return f"{int(seconds)} s ago"
    if seconds < HOUR:
        return f"{int(seconds // MINUTE)} min ago"
    if seconds < DAY:
        return f"{int(seconds // HOUR)} h ago"
    if seconds < 2 * DAY:
        return "yesterday"
    return moment.astimezone().strftime("%d %b %Y")


def eta(progress: int, elapsed: float) -> float | None:
    """Seconds left at the rate so far; None before there is a rate to go by."""
    if progress <= 0 or progress >= 100 or elapsed < 1:
        return None
    return elapsed * (100 - progress) / progress
