"""The built-in `csv` job: profile an uploaded CSV file into a column table and a chart.

The file's text travels in the task's `params` (bounded by MAX_CSV_BYTES): a re-run needs
nothing else, row level security on `tasks` already protects it, and PostgreSQL stores such
a value out of line (TOAST), so the progress updates Realtime sends do not repeat it.
The parsing and statistics run in a thread, in chunks, reporting progress and checking for
a cancel request between chunks.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from services.jobs.base import JobError, Reporter

MAX_CSV_BYTES = 2_000_000
CHUNK_ROWS = 2_000
TOP_VALUES = 10
SNIFF_BYTES = 8_192
MAX_COLUMNS = 500
MAX_TEXT = 100  # characters of a column name or value shown in the table and the chart


class CsvParams(BaseModel):
    data: str = Field(
        min_length=1,
        max_length=MAX_CSV_BYTES,
        title="CSV file",
        description="A comma, semicolon or tab separated file with a header row, up to 2 MB",
        json_schema_extra={"widget": "file", "accept": ".csv,.tsv,.txt", "name_field": "file"},
    )
    file: str = Field(
        "data.csv", max_length=200, title="File name", json_schema_extra={"widget": "hidden"}
    )
    chart_column: str | None = Field(
        None,
        max_length=200,
        title="Chart column",
        description="Column to chart (empty: the first numeric column, else the first one)",
    )
    bins: int = Field(12, ge=2, le=50, description="Number of bars in a numeric histogram")


@dataclass
class _Column:
    """Running tallies for one column."""

    name: str
    numbers: list[float] = field(default_factory=list)
    texts: Counter[str] = field(default_factory=Counter)
    missing: int = 0

    def add(self, raw: str) -> None:
        value = raw.strip()
        if not value:
            self.missing += 1
            return
        number = _number(value)
        if number is None:
            self.texts[value] += 1
        else:
            self.numbers.append(number)

    @property
    def filled(self) -> int:
        return len(self.numbers) + self.texts.total()

    @property
    def is_numeric(self) -> bool:
        return bool(self.numbers) and not self.texts


class CsvStatsJob:
    """Reads a CSV file and returns per-column statistics and a chart of one column."""

    kind: ClassVar[str] = "csv"
    title: ClassVar[str] = "CSV profile"
    description: ClassVar[str] = (
        "Upload a CSV file: every column is profiled (type, missing values, range, mean, "
        "most common values) and one column is charted."
    )
    Params: ClassVar[type[BaseModel]] = CsvParams

    async def run(self, params: CsvParams, reporter: Reporter) -> dict[str, Any]:
        return await asyncio.to_thread(profile, params, reporter)


def profile(params: CsvParams, reporter: Reporter) -> dict[str, Any]:
    """Parse and profile the file (blocking; run it in a thread)."""
    text = params.data.lstrip("\ufeff")
    dialect = _dialect(text)
    # newline="": the csv module reads \r\n, \n and bare \r line endings itself.
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = [_short(name.strip()) or f"column {i + 1}" for i, name in enumerate(next(reader))]
    except StopIteration:
        raise JobError("the file is empty") from None
    except csv.Error as exc:
        raise JobError(f"not a readable CSV file: {exc}") from None
    if len(header) > MAX_COLUMNS:
        raise JobError(
            f"the file has {len(header):,} columns; at most {MAX_COLUMNS} can be profiled"
        )
    columns = [_Column(name) for name in _unique(header)]

    rows = skipped = 0
    lines = max(1, text.count("\n") or text.count("\r"))
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(columns):
                skipped += 1
                continue
            for column, raw in zip(columns, record, strict=True):
                column.add(raw)
            rows += 1
            if rows % CHUNK_ROWS == 0:
                if reporter.cancelled:
                    raise JobError("cancelled")
                done = 90 * min(1.0, reader.line_num / lines)
                reporter.progress(done, f"read {rows:,} rows")
    except csv.Error as exc:
        raise JobError(f"line {reader.line_num}: {exc}") from None
    if rows == 0:
        raise JobError("the file has a header but no data rows with the same number of fields")

    reporter.progress(92, f"read {rows:,} rows; computing statistics")
    profiles = [_summary(column, rows) for column in columns]
    # Columns and rows as lists: jsonb keeps list order but sorts the keys of an object.
    table = {"columns": list(profiles[0]), "rows": [list(p.values()) for p in profiles]}
    chart = _chart(_chart_column(columns, params.chart_column), params.bins)
    reporter.progress(100, f"profiled {rows:,} rows")
    result: dict[str, Any] = {
        "summary": f"{params.file}: {rows:,} rows × {len(columns)} columns",
        "file": params.file,
        "rows": rows,
        "columns": len(columns),
        "delimiter": {"\t": "tab"}.get(dialect.delimiter, dialect.delimiter),
        "skipped_rows": skipped,
        "column_profile": table,
        "chart": chart,
    }
    return result


def _dialect(text: str) -> type[csv.Dialect]:
    try:
        return csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _unique(names: list[str]) -> list[str]:
    seen: Counter[str] = Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def _number(value: str) -> float | None:
    """The value as a finite number; `1_000`, `nan` and `inf` count as text."""
    if "_" in value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _summary(column: _Column, rows: int) -> dict[str, Any]:
    """One row of the profile table; every row has the same keys."""
    numeric = column.is_numeric
    numbers = column.numbers
    top = column.texts.most_common(1)
    return {
        "column": column.name,
        "type": "number" if numeric else "text",
        "filled": column.filled,
        "missing": column.missing,
        "distinct": len(set(numbers)) if numeric else len(column.texts),
        "min": _round(min(numbers)) if numeric else None,
        "max": _round(max(numbers)) if numeric else None,
        "mean": _round(_mean(numbers)) if numeric else None,
        "std": _std(numbers) if numeric and len(numbers) > 1 else None,
        "most_common": None if numeric or not top else f"{_short(top[0][0])} ({top[0][1]})",
    }


def _mean(numbers: list[float]) -> float:
    """The mean, also of numbers whose sum overflows a float (e.g. 1e308 twice)."""
    try:
        return statistics.fmean(numbers)
    except OverflowError:
        scale = max(abs(n) for n in numbers)
        return statistics.fmean([n / scale for n in numbers]) * scale


def _std(numbers: list[float]) -> float | None:
    """The population standard deviation; None when it is not a finite float."""
    try:
        std = statistics.pstdev(numbers)
    except OverflowError:
        return None
    return _round(std) if math.isfinite(std) else None


def _chart_column(columns: list[_Column], wanted: str | None) -> _Column:
    if wanted:
        for column in columns:
            if column.name == wanted:
                return column
        names = ", ".join(c.name for c in columns[:10])
        raise JobError(f"no column named {wanted!r}; the columns are: {names}")
    return next((c for c in columns if c.is_numeric), columns[0])


def _chart(column: _Column, bins: int) -> dict[str, Any]:
    """A histogram of a numeric column, else the counts of its most common values."""
    if column.is_numeric:
        labels, counts = _histogram(column.numbers, bins)
        return {"title": f"Distribution of {column.name}", "kind": "histogram",
                "x_label": column.name, "labels": labels, "values": counts}  # fmt: skip
    common = column.texts.most_common(TOP_VALUES)
    return {
        "title": f"Most common values of {column.name}",
        "kind": "bar",
        "x_label": column.name,
        "labels": [_short(value) for value, _ in common],
        "values": [count for _, count in common],
    }


def _histogram(numbers: list[float], bins: int) -> tuple[list[str], list[int]]:
    """Equal-width bins from min to max; the range may exceed the largest float (-1e308..1e308),
    so positions are computed on halved values and edges as weighted sums of min and max."""
    low, high = min(numbers), max(numbers)
    if low == high:
        return [_label(low)], [len(numbers)]
    span = high - low
    halved = not math.isfinite(span)
    low2 = low / 2
    if halved:
        span = high / 2 - low2
    counts = [0] * bins
    for number in numbers:
        offset = number / 2 - low2 if halved else number - low
        counts[min(bins - 1, int(offset / span * bins))] += 1
    edges = [low * (1 - i / bins) + high * (i / bins) for i in range(bins + 1)]
    edges[-1] = high
    labels = [f"{_label(edges[i])}–{_label(edges[i + 1])}" for i in range(bins)]
    return labels, counts


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _label(value: float) -> str:
    return f"{value:.4g}"


def _round(value: float) -> float:
    return float(f"{value:.4g}")
