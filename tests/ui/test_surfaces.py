"""Each surface through NiceGUI's simulated user: CSV upload, cancel, history, kiosk, embed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing.user import User
from nicegui.testing.user_interaction import UserInteraction

from services.models import Task, TaskStatus
from tests.ui.conftest import wait_until
from tests.ui.test_landing import _one, _ready, _status
from ui.history import HistoryList

pytestmark = pytest.mark.integration

CSV = b"city,temp\nOslo,3.5\nRome,18\nLima,20.5\nOslo,-1\n"


async def _choose(user: User, kind: str) -> None:
    _one(user, "kind").value = kind  # type: ignore[attr-defined]
    await user.should_see(marker="bins" if kind == "csv" else "steps")


async def _upload(user: User, name: str, data: bytes) -> None:
    upload = next(iter(user.find(ui.upload).elements))
    await upload.handle_uploads([SmallFileUpload(name=name, content_type="text/csv", _data=data)])


async def test_an_uploaded_csv_is_profiled_into_a_table_and_a_chart(user: User) -> None:
    await user.open("/")
    await _ready(user)
    await _choose(user, "csv")

    await _upload(user, "weather.csv", CSV)
    await user.should_see("weather.csv · 45 bytes · 5 lines")
    user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "completed", 30, "the csv task to complete")
    await user.should_see("weather.csv: 4 rows × 2 columns", retries=50)
    await user.should_see(marker="result-column_profile")
    chart = _one(user, "result-chart")
    options = chart.options  # type: ignore[attr-defined]
    assert options["title"]["text"] == "Distribution of temp"
    assert options["yAxis"]["minInterval"] == 1
    assert options["xAxis"]["data"][0] == "-1–0.792"


async def test_large_numbers_on_the_chart_axis_are_compact(user: User) -> None:
    await user.open("/")
    await _ready(user)
    await _choose(user, "csv")
    await _upload(user, "sales.csv", b"shop,sales\na,53000\nb,94000\nc,61000\nd,70000\n")
    user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "completed", 30, "the csv task to complete")
    await user.should_see(marker="result-chart", retries=50)
    labels = _one(user, "result-chart").options["xAxis"]["data"]  # type: ignore[attr-defined]
    assert labels[0].startswith("53k–")
    assert not any("e+" in label for label in labels)


async def test_bad_files_and_a_missing_file_are_refused_inline(user: User) -> None:
    await user.open("/")
    await _ready(user)
    await _choose(user, "csv")

    user.find(marker="submit").click()
    await user.should_see("choose a file first")

    await _upload(user, "photo.csv", b"\x89PNG\x00\x00binary")
    await user.should_see("photo.csv: not a text file")
    await _upload(user, "latin.csv", "name\nJosé\n".encode("latin-1"))
    await user.should_see("latin.csv: not UTF-8 text")
    assert _status(user) == "no task yet"


@dataclass
class _HugeUpload(SmallFileUpload):
    """A file whose size says 400 MB; reading it fails the test."""

    def size(self) -> int:
        return 400_000_000

    async def read(self) -> bytes:
        raise AssertionError("a file over the limit was read")


async def test_a_posted_file_over_the_limit_is_refused_before_it_is_read(user: User) -> None:
    await user.open("/")
    await _ready(user)
    await _choose(user, "csv")
    upload = next(iter(user.find(ui.upload).elements))

    await upload.handle_uploads([_HugeUpload(name="huge.csv", content_type="text/csv", _data=b"")])
    await user.should_see("huge.csv: larger than")

    # Only the first file of a POST counts; the browser sends one, a script may send more.
    second = SmallFileUpload(name="second.csv", content_type="text/csv", _data=CSV)
    first = SmallFileUpload(name="first.csv", content_type="text/csv", _data=CSV)
    await upload.handle_uploads([first, second])
    await user.should_see("first.csv · 45 bytes · 5 lines")
    await user.should_not_see("second.csv")


async def test_row_text_in_attributes_is_a_value_not_markup(user: User) -> None:
    await user.open("/")
    kind = 'demo" onmouseover="alert(1)'
    task = Task(id="t1", kind=kind, status=TaskStatus.COMPLETED)

    async def nothing(_: str) -> None:
        return None

    with user.client.content:
        history = HistoryList(nothing, nothing)
        history.show([task], None)
    await wait_until(lambda: bool(_rows_of(history)), 5, "the row (refreshed in the background)")

    row = _rows_of(history)[0]
    rerun = _descendant(row, "rerun")
    assert row.props["aria-label"] == f"watch {kind} task, completed"
    assert rerun.props["aria-label"] == f"re-run this {kind} task"
    assert "onmouseover" not in row.props and "onmouseover" not in rerun.props


def _rows_of(history: HistoryList) -> list[ui.element]:
    lists = [e for e in history.card.descendants() if "history-list" in e._markers]
    return list(lists[0].default_slot.children) if lists else []


async def test_the_owner_cancels_a_running_task(user: User) -> None:
    await user.open("/")
    await _ready(user)
    _one(user, "steps").value = 50  # type: ignore[attr-defined]
    _one(user, "step_seconds").value = 0.2  # type: ignore[attr-defined]
    user.find(marker="submit").click()
    await wait_until(lambda: _status(user) == "processing", 20, "the task to start")

    user.find(marker="cancel").click()

    await wait_until(lambda: _status(user) == "cancelled", 20, "the task to be cancelled")
    await user.should_see("The task was cancelled")
    await user.should_not_see(marker="result")


async def test_history_lists_tasks_newest_first_and_switches_and_reruns(user: User) -> None:
    await user.open("/")
    await _ready(user)
    await user.should_see(marker="history-empty", retries=50)
    _one(user, "steps").value = 1  # type: ignore[attr-defined]
    _one(user, "step_seconds").value = 0  # type: ignore[attr-defined]
    user.find(marker="submit").click()
    await wait_until(lambda: _status(user) == "completed", 30, "the first task")
    first = _one(user, "task-id").text  # type: ignore[attr-defined]
    _one(user, "fail_at_step").value = 1  # type: ignore[attr-defined]
    user.find(marker="submit").click()
    await wait_until(lambda: _status(user) == "failed", 30, "the second task")
    await wait_until(lambda: _titles(user) == ["demo · failed", "demo · completed"], 10,
                     "both tasks in the history, newest first")  # fmt: skip

    _click(user, _rows(user)[1])

    await wait_until(lambda: _status(user) == "completed", 10, "switching to the first task")
    assert _one(user, "task-id").text == first  # type: ignore[attr-defined]

    # The button stops the click from also reaching its row: its listener is `click.stop`.
    _click(user, _descendant(_rows(user)[1], "rerun"), "click.stop")

    await wait_until(lambda: len(_rows(user)) == 3, 20, "a third history row")
    await wait_until(lambda: _status(user) == "completed", 30, "the re-run to complete")
    assert _one(user, "task-id").text != first  # type: ignore[attr-defined]


def _rows(user: User) -> list[ui.element]:
    """The history rows in page order."""
    lists = user.find(marker="history-list").elements
    return list(next(iter(lists)).default_slot.children) if lists else []


def _titles(user: User) -> list[str]:
    return [_descendant(row, "history-title").text for row in _rows(user)]  # type: ignore[attr-defined]


def _descendant(element: ui.element, marker: str) -> ui.element:
    return next(e for e in element.descendants() if marker in e._markers)


def _click(user: User, element: ui.element, event: str = "click") -> None:
    UserInteraction(user, {element}, None).trigger(event)


async def test_the_kiosk_runs_one_job_and_resets_to_a_fresh_form(user: User) -> None:
    await user.open("/kiosk")
    await _ready(user)
    await user.should_not_see(marker="kind")
    await user.should_not_see(marker="history")
    _one(user, "steps").value = 1  # type: ignore[attr-defined]
    _one(user, "step_seconds").value = 0  # type: ignore[attr-defined]

    user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "completed", 30, "the kiosk task")
    await user.should_see("A new form appears in", retries=30)
    await wait_until(lambda: _status(user) == "no task yet", 10, "the kiosk to reset")
    assert _one(user, "steps").value == "5"  # type: ignore[attr-defined]


async def test_the_embed_page_submits_the_query_parameters(user: User) -> None:
    await user.open("/embed?kind=demo&steps=2&step_seconds=0")
    await _ready(user)
    await user.should_not_see(marker="history")
    await user.should_not_see("New task")

    user.find(marker="submit").click()

    await wait_until(lambda: _status(user) == "completed", 30, "the embedded task")
    await user.should_see("2 steps done", retries=50)


async def test_the_embed_page_explains_bad_query_parameters(user: User) -> None:
    await user.open("/embed?kind=demo&steps=0")

    await user.should_see("invalid parameters: steps: Input should be greater than or equal to 1")
    await user.open("/embed?kind=nope")
    await user.should_see("Unknown job kind 'nope'")


async def test_kiosk_and_embed_show_only_their_own_tasks_and_leave_the_full_page_alone(
    user: User,
) -> None:
    await user.open("/")
    await _ready(user)
    await _choose(user, "csv")
    await _upload(user, "weather.csv", CSV)
    user.find(marker="submit").click()
    await wait_until(lambda: _status(user) == "completed", 30, "the csv task on /")
    csv_task = _one(user, "task-id").text  # type: ignore[attr-defined]

    await user.open("/kiosk")
    await _ready(user)
    assert _status(user) == "no task yet"
    await user.should_not_see("weather.csv: 4 rows × 2 columns")

    await user.open("/embed?kind=demo&steps=1&step_seconds=0")
    await _ready(user)
    assert _status(user) == "no task yet"
    assert _one(user, "result-summary").text == ""  # type: ignore[attr-defined]
    user.find(marker="submit").click()
    await wait_until(lambda: _status(user) == "completed", 30, "the embedded demo task")
    await user.should_see("1 step done", retries=50)

    await user.open("/")
    await _ready(user)
    await wait_until(lambda: _status(user) == "completed", 10, "the csv task again")
    assert _one(user, "task-id").text == csv_task  # type: ignore[attr-defined]
    await user.should_see("weather.csv: 4 rows × 2 columns", retries=50)

    await user.open("/embed?kind=demo")
    await _ready(user)
    await wait_until(lambda: _status(user) == "completed", 10, "the embed's own demo task")
    await user.open("/kiosk")
    await _ready(user)
    assert _status(user) == "no task yet"
