"""What a job is: a kind, a parameter model and an async `run`."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel


class JobError(Exception):
    """A job failed for a reason the user should read; the message is shown as is."""


class Reporter(Protocol):
    """Handed to `Job.run`; safe to call from the event loop or from a worker thread."""

    def progress(self, percent: float, message: str | None = None) -> None:
        """Record progress (0-100) and a short message; sending is coalesced."""
        ...

    @property
    def cancelled(self) -> bool:
        """True once the task should stop (user request or worker shutdown)."""
        ...


@runtime_checkable
class Job(Protocol):
    """A kind of task the worker can run.

    `Params` drives both validation in the worker and the form in the UI: field types,
    limits, defaults and `Field(description=...)` texts are all read from it.
    """

    kind: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    async def run(self, params: Any, reporter: Reporter) -> dict[str, Any]:
        """Do the work and return a JSON-serialisable result; raise to fail the task.

        CPU-heavy work belongs in `asyncio.to_thread` so the worker's loop stays free.
        """
        ...


def describe_invalid_params(exc: Exception) -> str:
    """One readable line for a parameter validation error (no traceback, no URLs)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"invalid parameters: {exc}"
    parts = []
    for error in errors(include_url=False):
        where = ".".join(str(part) for part in error.get("loc", ())) or "params"
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "invalid parameters: " + "; ".join(parts)
