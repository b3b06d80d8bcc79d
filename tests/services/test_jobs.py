"""Job registry, the demo job's parameters and behaviour, and the progress reporter."""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from services.jobs import (
    DemoJob,
    DemoParams,
    JobError,
    JobRegistry,
    UnknownJobKind,
    describe_invalid_params,
)
from services.worker import ProgressReporter


class RecordingReporter:
    def __init__(self) -> None:
        self.reports: list[tuple[float, str | None]] = []
        self.cancelled = False

    def progress(self, percent: float, message: str | None = None) -> None:
        self.reports.append((percent, message))


class EchoParams(BaseModel):
    text: str = "hi"


class EchoJob:
    kind: ClassVar[str] = "echo"
    title: ClassVar[str] = "Echo"
    description: ClassVar[str] = "Returns its input."
    Params: ClassVar[type[BaseModel]] = EchoParams

    async def run(self, params: EchoParams, reporter: Any) -> dict[str, Any]:
        return {"text": params.text}


def test_demo_defaults_run_with_no_typing() -> None:
    params = DemoParams()

    assert (params.steps, params.step_seconds, params.fail_at_step) == (5, 1.0, None)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 1001}, "steps"),
        ({"step_seconds": -0.1}, "step_seconds"),
        ({"step_seconds": 61}, "step_seconds"),
        ({"fail_at_step": 0}, "fail_at_step"),
        ({"steps": "many"}, "steps"),
    ],
)
def test_demo_params_outside_their_limits_are_rejected(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DemoParams.model_validate(values)

    assert describe_invalid_params(caught.value).startswith(f"invalid parameters: {field}: ")


def test_a_failure_step_after_the_last_step_is_rejected_readably() -> None:
    with pytest.raises(ValidationError) as caught:
        DemoParams.model_validate({"steps": 3, "fail_at_step": 4})

    message = describe_invalid_params(caught.value)
    assert message == "invalid parameters: params: fail_at_step (4) is after the last step"


def test_the_params_schema_carries_limits_and_descriptions_for_the_form() -> None:
    schema = DemoParams.model_json_schema()["properties"]

    assert schema["steps"]["minimum"] == 1 and schema["steps"]["maximum"] == 1000
    assert schema["step_seconds"]["maximum"] == 60
    assert all(schema[name].get("description") for name in schema)


async def test_the_demo_reports_each_step_and_returns_a_summary() -> None:
    reporter = RecordingReporter()

    result = await DemoJob().run(DemoParams(steps=4, step_seconds=0), reporter)

    assert [message for _, message in reporter.reports] == [
        "step 1 of 4",
        "step 2 of 4",
        "step 3 of 4",
        "step 4 of 4",
    ]
    assert [percent for percent, _ in reporter.reports] == [25, 50, 75, 100]
    assert result["steps"] == 4
    assert result["sum_of_squares"] == 1 + 4 + 9 + 16
    assert [r["step"] for r in result["rows"]] == [1, 2, 3, 4]
    assert result["summary"].startswith("4 steps done")


async def test_the_demo_fails_at_the_requested_step_with_a_readable_reason() -> None:
    reporter = RecordingReporter()

    with pytest.raises(JobError, match=r"^step 2 of 3 failed on purpose"):
        await DemoJob().run(DemoParams(steps=3, step_seconds=0, fail_at_step=2), reporter)

    assert [message for _, message in reporter.reports] == ["step 1 of 3"]


def test_the_registry_starts_with_the_builtins_and_refuses_duplicates() -> None:
    registry = JobRegistry.with_builtins()

    assert registry.kinds() == ["demo", "csv"]
    with pytest.raises(ValueError, match="already registered"):
        registry.register(DemoJob())


def test_an_unknown_kind_has_a_readable_message() -> None:
    with pytest.raises(UnknownJobKind) as caught:
        JobRegistry.with_builtins().get("nope")

    assert str(caught.value) == "unknown job kind 'nope'"


def test_jobs_can_be_added_from_a_module(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("extra_jobs_for_test")
    module.JOBS = [EchoJob]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    registry = JobRegistry.with_builtins()

    registry.load_module(module.__name__)

    assert registry.kinds() == ["demo", "csv", "echo"]


def test_a_module_without_jobs_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("no_jobs_for_test")
    monkeypatch.setitem(sys.modules, module.__name__, module)

    with pytest.raises(ValueError, match="neither register_jobs"):
        JobRegistry().load_module(module.__name__)


def test_something_that_is_not_a_job_is_refused() -> None:
    with pytest.raises(TypeError):
        JobRegistry().register(object())  # type: ignore[arg-type]


async def test_progress_from_a_worker_thread_reaches_the_loop() -> None:
    reporter = ProgressReporter(asyncio.get_running_loop())

    await asyncio.to_thread(reporter.progress, 42.4, "halfway-ish")
    await asyncio.wait_for(reporter.changed.wait(), timeout=1)

    assert reporter.latest == (42, "halfway-ish")


def test_progress_is_clamped_to_0_100() -> None:
    loop = asyncio.new_event_loop()
    try:
        reporter = ProgressReporter(loop)
        reporter.progress(250, "too much")
        assert reporter.latest == (100, "too much")
        reporter.progress(-3)
        assert reporter.latest == (0, None)
    finally:
        loop.close()
