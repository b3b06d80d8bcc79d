"""The built-in `demo` job: counts steps, sleeping between them, optionally failing."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Self

from pydantic import BaseModel, Field, model_validator

from services.jobs.base import JobError, Reporter

TABLE_ROWS = 20


class DemoParams(BaseModel):
    steps: int = Field(5, ge=1, le=1000, description="How many steps to run")
    step_seconds: float = Field(
        1.0, ge=0, le=60, description="How long each step takes, in seconds"
    )
    fail_at_step: int | None = Field(
        None, ge=1, le=1000, description="Fail on purpose at this step (leave empty to succeed)"
    )

    @model_validator(mode="after")
    def _fail_step_within_steps(self) -> Self:
        if self.fail_at_step is not None and self.fail_at_step > self.steps:
            raise ValueError(f"fail_at_step ({self.fail_at_step}) is after the last step")
        return self


class DemoJob:
    """Sleeps through `steps` steps, reporting `step i of n`, and returns a small summary."""

    kind: ClassVar[str] = "demo"
    title: ClassVar[str] = "Demo"
    description: ClassVar[str] = (
        "Runs a number of timed steps and reports progress after each one. "
        "Set a failure step to see how a failed task looks."
    )
    Params: ClassVar[type[BaseModel]] = DemoParams

    async def run(self, params: DemoParams, reporter: Reporter) -> dict[str, Any]:
        started = time.monotonic()
        rows: list[dict[str, Any]] = []
        for step in range(1, params.steps + 1):
            if reporter.cancelled:
                raise JobError(f"stopped before step {step} of {params.steps}")
            await asyncio.sleep(params.step_seconds)
            if step == params.fail_at_step:
                raise JobError(f"step {step} of {params.steps} failed on purpose (fail_at_step)")
            reporter.progress(100 * step / params.steps, f"step {step} of {params.steps}")
            if step <= TABLE_ROWS:
                rows.append({"step": step, "square": step * step, "at_seconds": _since(started)})

        elapsed = _since(started)
        return {
            "summary": f"{_plural(params.steps, 'step')} done in {elapsed:.2f} s",
            "steps": params.steps,
            "elapsed_seconds": elapsed,
            "sum_of_squares": sum(i * i for i in range(1, params.steps + 1)),
            "rows": rows,
            "rows_total": params.steps,  # rows holds the first TABLE_ROWS steps only
        }


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
