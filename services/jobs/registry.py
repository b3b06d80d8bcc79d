"""JobRegistry: the job kinds a worker can run and the UI can offer, keyed by kind."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from importlib.metadata import entry_points

from services.jobs.base import Job

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tasklight.jobs"


class UnknownJobKind(KeyError):
    """No job is registered under this kind."""

    def __str__(self) -> str:
        return f"unknown job kind {self.args[0]!r}"


class JobRegistry:
    """Jobs by kind, in registration order.

    Extra kinds come from `register()`, from a module (`load_module`, used by `--jobs
    module`) that defines `register_jobs(registry)` or a `JOBS` list, or from packages that
    publish entry points in the `tasklight.jobs` group (each pointing at a Job class).
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    @classmethod
    def with_builtins(cls) -> JobRegistry:
        registry = cls()
        registry.load_builtins()
        return registry

    def register(self, job: Job, *, replace: bool = False) -> None:
        if not isinstance(job, Job):
            raise TypeError(f"{job!r} is not a job (kind, title, description, Params, run)")
        if job.kind in self._jobs and not replace:
            raise ValueError(f"job kind {job.kind!r} is already registered")
        self._jobs[job.kind] = job
        log.debug("registered job kind %s", job.kind)

    def get(self, kind: str) -> Job:
        try:
            return self._jobs[kind]
        except KeyError:
            raise UnknownJobKind(kind) from None

    def __contains__(self, kind: object) -> bool:
        return kind in self._jobs

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def kinds(self) -> list[str]:
        return list(self._jobs)

    def load_builtins(self) -> None:
        from services.jobs.csv_stats import CsvStatsJob
        from services.jobs.demo import DemoJob

        self.register(DemoJob())
        self.register(CsvStatsJob())

    def load_module(self, name: str) -> None:
        """Import `name` and register its jobs (`register_jobs(registry)` or `JOBS`)."""
        module = importlib.import_module(name)
        if hasattr(module, "register_jobs"):
            module.register_jobs(self)
        elif hasattr(module, "JOBS"):
            for job in module.JOBS:
                self.register(job() if isinstance(job, type) else job)
        else:
            raise ValueError(f"module {name!r} defines neither register_jobs() nor JOBS")
        log.info("loaded jobs from %s", name)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register every job published under the entry point group; bad ones are logged."""
        for point in entry_points(group=group):
            try:
                job = point.load()
                self.register(job() if isinstance(job, type) else job)
            except Exception:
                log.exception("could not load job entry point %s", point.name)
