"""The `csv` job: parsing, statistics, chart, progress, cancel and readable errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.jobs import MAX_CSV_BYTES, CsvParams, CsvStatsJob, JobError
from services.jobs.csv_stats import CHUNK_ROWS


class RecordingReporter:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.reports: list[tuple[float, str | None]] = []
        self.cancel_after = cancel_after

    def progress(self, percent: float, message: str | None = None) -> None:
        self.reports.append((percent, message))

    @property
    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.reports) >= self.cancel_after


async def _run(text: str, reporter: RecordingReporter | None = None, **params: object) -> dict:
    job = CsvStatsJob()
    return await job.run(CsvParams(data=text, **params), reporter or RecordingReporter())


async def test_columns_are_profiled_and_the_first_numeric_one_is_charted() -> None:
    text = "city;temp;rain\nOslo;3.5;1\nRome;18;0\nOslo;-1;\nLima;20.5;2\n"

    result = await _run(text, bins=2, file="weather.csv")

    assert result["summary"] == "weather.csv: 4 rows × 3 columns"
    assert (result["rows"], result["columns"], result["delimiter"]) == (4, 3, ";")
    table = result["column_profile"]
    assert table["columns"][:3] == ["column", "type", "filled"]
    city, temp, rain = (dict(zip(table["columns"], row, strict=True)) for row in table["rows"])
    assert (city["type"], city["distinct"], city["most_common"]) == ("text", 3, "Oslo (2)")
    assert (temp["type"], temp["min"], temp["max"], temp["mean"]) == ("number", -1, 20.5, 10.25)
    assert (rain["filled"], rain["missing"]) == (3, 1)
    assert result["chart"]["title"] == "Distribution of temp"
    assert result["chart"]["values"] == [2, 2]
    assert sum(result["chart"]["values"]) == 4


async def test_a_text_column_is_charted_by_its_most_common_values() -> None:
    text = "fruit,n\napple,1\npear,2\napple,3\n"

    result = await _run(text, chart_column="fruit")

    assert result["chart"]["kind"] == "bar"
    assert result["chart"]["labels"] == ["apple", "pear"]
    assert result["chart"]["values"] == [2, 1]


async def test_rows_with_the_wrong_number_of_fields_are_counted_and_skipped() -> None:
    result = await _run("a,b\n1,2\n3\n4,5,6\n7,8\n")

    assert (result["rows"], result["skipped_rows"]) == (2, 2)


async def test_progress_is_reported_in_chunks_and_ends_at_100() -> None:
    text = "x\n" + "\n".join(str(i) for i in range(CHUNK_ROWS * 3))
    reporter = RecordingReporter()

    await _run(text, reporter)

    percents = [percent for percent, _ in reporter.reports]
    assert len(percents) >= 4
    assert percents == sorted(percents)
    assert percents[-1] == 100


async def test_a_cancel_request_stops_between_chunks() -> None:
    text = "x\n" + "\n".join(str(i) for i in range(CHUNK_ROWS * 5))
    reporter = RecordingReporter(cancel_after=1)

    with pytest.raises(JobError, match="cancelled"):
        await _run(text, reporter)
    assert len(reporter.reports) == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("only,a,header\n", "no data rows"),
        ("a,b\n1,2\n", "no column named 'c'"),
    ],
)
async def test_unusable_input_fails_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(JobError, match=reason):
        await _run(text, chart_column="c" if "no column" in reason else None)


def test_the_file_size_is_bounded_and_empty_files_are_refused() -> None:
    with pytest.raises(ValidationError, match="at most"):
        CsvParams(data="x" * (MAX_CSV_BYTES + 1))
    with pytest.raises(ValidationError, match="at least 1"):
        CsvParams(data="")
