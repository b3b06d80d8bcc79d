"""The `csv` job: parsing, statistics, chart, progress, cancel and readable errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.jobs import MAX_CSV_BYTES, CsvParams, CsvStatsJob, JobError
from services.jobs.csv_stats import CHUNK_ROWS, MAX_COLUMNS, MAX_TEXT


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


def _profile_of(result: dict) -> dict:
    table = result["column_profile"]
    (row,) = table["rows"]
    return dict(zip(table["columns"], row, strict=True))


async def test_numbers_whose_sum_overflows_still_have_a_mean() -> None:
    result = await _run("x\n1e308\n1e308\n")

    x = _profile_of(result)
    assert (x["min"], x["max"], x["mean"], x["std"]) == (1e308, 1e308, 1e308, 0.0)
    assert result["chart"]["values"] == [2]


async def test_a_range_wider_than_the_largest_float_is_charted() -> None:
    result = await _run("x\n1e308\n-1e308\n0\n", bins=4)

    x = _profile_of(result)
    assert (x["min"], x["max"], x["mean"], x["std"]) == (-1e308, 1e308, 0.0, 8.165e307)
    chart = result["chart"]
    assert chart["values"] == [1, 0, 1, 1]
    assert chart["labels"][0] == "-1e+308–-5e+307" and chart["labels"][-1] == "5e+307–1e+308"


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
async def test_every_line_ending_is_read(newline: str) -> None:
    text = newline.join(["a,b", "1,x", "2,y", "3,x"]) + newline

    result = await _run(text)

    assert (result["rows"], result["columns"], result["skipped_rows"]) == (3, 2, 0)
    assert result["column_profile"]["rows"][1][-1] == "x (2)"


async def test_too_many_columns_are_refused_before_profiling() -> None:
    columns = MAX_COLUMNS + 1
    text = ",".join(f"c{i}" for i in range(columns)) + "\n" + ",".join("1" * columns) + "\n"
    reporter = RecordingReporter()

    with pytest.raises(JobError, match=f"has {columns} columns; at most {MAX_COLUMNS}"):
        await _run(text, reporter)
    assert reporter.reports == []


async def test_long_names_and_values_are_shortened_in_the_table_and_the_chart() -> None:
    name, value = "n" * 5_000, "v" * 5_000
    result = await _run(f"{name}\n{value}\n{value}\n")

    x = _profile_of(result)
    assert len(x["column"]) == MAX_TEXT and x["column"].endswith("…")
    assert x["most_common"] == "v" * (MAX_TEXT - 1) + "… (2)"
    assert result["chart"]["labels"] == ["v" * (MAX_TEXT - 1) + "…"]
