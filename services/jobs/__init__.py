"""Jobs the worker runs, by kind."""

from services.jobs.base import Job, JobError, Reporter, describe_invalid_params
from services.jobs.csv_stats import MAX_CSV_BYTES, CsvParams, CsvStatsJob
from services.jobs.demo import DemoJob, DemoParams
from services.jobs.registry import JobRegistry, UnknownJobKind

__all__ = [
    "MAX_CSV_BYTES",
    "CsvParams",
    "CsvStatsJob",
    "DemoJob",
    "DemoParams",
    "Job",
    "JobError",
    "JobRegistry",
    "Reporter",
    "UnknownJobKind",
    "describe_invalid_params",
]
