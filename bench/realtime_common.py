"""Shared parts of the realtime benches: a throw-away server here, official clients elsewhere.

The server (a LocalbaseThread on a temporary data dir, 127.0.0.1, free port) runs in the bench's
main process; the official realtime clients run in a child process (multiprocessing, spawn),
so the server's CPU figure is its own and the clients do not share its GIL. Users are created
straight in ``auth.users`` with one task each and get minted access tokens (anonymous
sign-in would hit the auth rate limits long before 500 users).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localbase.database import parse_dsn
from localbase.server import LocalbaseThread


@dataclass(frozen=True)
class UserSpec:
    user_id: str
    task_id: str
    token: str


@contextlib.contextmanager
def server() -> Iterator[LocalbaseThread]:
    """A throw-away localbase; stopped (postgres included) on exit."""
    with tempfile.TemporaryDirectory(prefix="realtime-bench-") as data_dir:
        runner = LocalbaseThread(Path(data_dir), host="127.0.0.1", port=0)
        runner.start(timeout=120)
        try:
            yield runner
        finally:
            runner.stop()


async def make_users(runner: LocalbaseThread, count: int) -> list[UserSpec]:
    """``count`` users with one pending task each, and an access token per user."""
    conn = await asyncpg.connect(**parse_dsn(runner.postgres.dsn))
    users = []
    try:
        for _ in range(count):
            user_id = str(uuid.uuid4())
            await conn.execute(
                "insert into auth.users (id, aud, role, is_anonymous)"
                " values ($1, 'authenticated', 'authenticated', true)",
                user_id,
            )
            task_id = await conn.fetchval(
                "insert into tasks (user_id, kind) values ($1, 'demo') returning id::text", user_id
            )
            token, _ = runner.keys.mint_access_token(
                user_id, str(uuid.uuid4()), is_anonymous=True, lifetime=3600
            )
            users.append(UserSpec(user_id, task_id, token))
    finally:
        await conn.close()
    return users


async def subscribe_all(
    url: str, anon_key: str, users: list[UserSpec], on_change: Any
) -> list[Any]:
    """One official realtime client (socket) per user, each watching its own task.

    ``on_change(index, payload)`` is called for every UPDATE. Returns the clients.
    """
    from realtime import AsyncRealtimeClient

    clients = []

    async def one(index: int, user: UserSpec) -> Any:
        client = AsyncRealtimeClient(
            url.replace("http", "ws", 1) + "/realtime/v1", token=anon_key, auto_reconnect=True
        )
        await client.connect()
        await client.set_auth(user.token)
        live = asyncio.Event()
        channel = client.channel(f"bench-{index}")
        channel.on_postgres_changes(
            "UPDATE",
            lambda payload, i=index: on_change(i, payload),
            table="tasks",
            filter=f"id=eq.{user.task_id}",
        )
        channel.on_system(lambda _: live.set())
        await channel.subscribe()
        await asyncio.wait_for(live.wait(), 30)
        return client

    for start in range(0, len(users), 25):
        group = range(start, min(start + 25, len(users)))
        clients += await asyncio.gather(*(one(i, users[i]) for i in group))
    return clients


def percentile(values: list[float], q: int) -> float:
    cuts = statistics.quantiles(sorted(values), n=100, method="inclusive")
    return cuts[q - 1]


def cpu_seconds() -> float:
    """User + system CPU of this process (all its threads), not of its children."""
    times = os.times()
    return times.user + times.system


def now() -> float:
    """CLOCK_MONOTONIC, comparable between the bench's processes."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)
