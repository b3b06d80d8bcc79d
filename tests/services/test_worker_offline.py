"""The worker against an address where nothing listens: it waits and retries, never spins."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from services.jobs import JobRegistry
from services.worker import Worker


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(30)
async def test_an_unreachable_api_is_retried_with_backoff_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = Worker(
        f"http://127.0.0.1:{unused_port()}", "sb_secret_unused", JobRegistry.with_builtins()
    )

    with caplog.at_level(logging.WARNING, logger="services.worker"):
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(3)
        assert not running.done()
        worker.stop()
        await asyncio.wait_for(running, timeout=5)

    retries = [r for r in caplog.records if "cannot reach the api" in r.getMessage()]
    assert 2 <= len(retries) <= 5
    assert worker.client is None
