"""Short human texts for times and durations, as the pages show them."""

from __future__ import annotations

import re
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


_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*[–-]\s*({_NUMBER})\s*$")


def compact_number(value: float) -> str:
    """`0.25`, `18.5`, `940`, `53k`, `1.2M`: at most 3 significant digits, no exponent."""
    for size, suffix in _SUFFIXES:
        if abs(value) >= size * 0.9995:
            return f"{_digits(value / size)}{suffix}"
    if value != 0 and abs(value) < 0.001:
        return f"{value:.1e}"
    return _digits(value)


def _digits(value: float) -> str:
    text = f"{value:.3g}"
    if "e" in text:  # e.g. 999.6 -> 1e+03 at 3 digits
        text = f"{value:.0f}"
    return text


def compact_label(label: str) -> str:
    """A chart label: a number or a `low–high` range of numbers made compact, else as is."""
    label = str(label)
    if match := _RANGE.match(label):
        return f"{compact_number(float(match[1]))}–{compact_number(float(match[2]))}"
    try:
        return compact_number(float(label))
    except ValueError:
        return label
