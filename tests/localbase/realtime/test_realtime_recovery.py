"""Issue 5, localbase side: Postgres or localbase restarted under subscribers, WAL retention.

A private localbase (not the session one) is restarted here. Each test ends with the official
client's channel subscribed again, the catch-up fetch showing the final state, and the next
change delivered live.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from supabase import AsyncClient, acreate_client

from localbase.database import parse_dsn
from localbase.server import LocalbaseThread
from tests.conftest import _close
from tests.localbase.realtime.test_realtime_integration import Watch, new_task, set_progress, watch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A localbase of our own; ``stack["runner"]`` may be replaced by a restarted one."""
    data_dir: Path = tmp_path_factory.mktemp("recovery")
    runner = LocalbaseThread(data_dir, host="127.0.0.1", port=0)
    runner.start(timeout=120)
    stack = {"runner": runner, "data_dir": data_dir}
    try:
        yield stack
    finally:
        stack["runner"].stop()


@pytest.fixture
async def users(private_stack) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    runner = private_stack["runner"]
    service = await acreate_client(runner.url, runner.keys.service_role_key)
    alice = await acreate_client(runner.url, runner.keys.anon_key)
    session = (await alice.auth.sign_in_anonymously()).session
    await alice.realtime.set_auth(session.access_token)
    try:
        yield service, alice
    finally:
        await _close(alice)
        await _close(service)


async def resubscribed(seen: Watch, within: float = 40) -> None:
    """Wait for CHANNEL_ERROR followed by SUBSCRIBED and a new "Subscribed" system message
    (clear ``seen.system`` before causing the fault)."""
    for _ in range(int(within / 0.05)):  # the system message does not wake Watch.until
        if "CHANNEL_ERROR" in seen.states and seen.states[-1] == "SUBSCRIBED":
            if seen.system.is_set():
                break
        await asyncio.sleep(0.05)
    assert seen.states[-1] == "SUBSCRIBED" and seen.system.is_set(), seen.states


async def fetch_progress(client: AsyncClient, task_id: str) -> int:
    for attempt in range(20):  # the REST pool may still be reconnecting
        try:
            rows = await client.table("tasks").select("progress").eq("id", task_id).execute()
            return rows.data[0]["progress"]
        except Exception:
            if attempt == 19:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def test_postgres_restart_makes_channels_rejoin_and_nothing_is_lost(
    private_stack, users
) -> None:
    service, alice = users
    runner: LocalbaseThread = private_stack["runner"]
    task = await new_task(alice)
    seen = await watch(alice, "pg-restart", filter=f"id=eq.{task['id']}")
    seen.system.clear()

    await asyncio.to_thread(runner.postgres.stop)
    await asyncio.to_thread(runner.postgres.start)
    await set_progress_retrying(service, task["id"], 55)  # may land before replication is back

    await resubscribed(seen)
    assert await fetch_progress(alice, task["id"]) == 55
    await set_progress(service, task["id"], 56)
    await seen.until(lambda: 56 in seen.progress(), within=10)
    assert seen.progress()[-1] == 56


async def set_progress_retrying(service: AsyncClient, task_id: str, progress: int) -> None:
    for attempt in range(20):
        try:
            await set_progress(service, task_id, progress)
            return
        except Exception:
            if attempt == 19:
                raise
            await asyncio.sleep(0.5)


async def test_localbase_restart_client_reconnects_and_catches_up(private_stack, users) -> None:
    service, alice = users
    old: LocalbaseThread = private_stack["runner"]
    task = await new_task(alice)
    seen = await watch(alice, "lb-restart", filter=f"id=eq.{task['id']}")
    seen.system.clear()
    port = int(old.url.rsplit(":", 1)[1])

    await asyncio.to_thread(old.stop)
    new = LocalbaseThread(private_stack["data_dir"], host="127.0.0.1", port=port)
    await asyncio.to_thread(new.start, 120)
    private_stack["runner"] = new
    await set_progress_retrying(service, task["id"], 77)

    await resubscribed(seen)
    assert await fetch_progress(alice, task["id"]) == 77
    await set_progress(service, task["id"], 78)
    await seen.until(lambda: 78 in seen.progress(), within=10)
    assert seen.progress()[-1] == 78


async def test_wal_retained_by_the_slot_stays_bounded_without_subscribers(private_stack) -> None:
    runner: LocalbaseThread = private_stack["runner"]
    conn = await asyncpg.connect(**parse_dsn(runner.postgres.dsn))
    lag = (
        "select max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::bigint"
        " from pg_replication_slots where slot_name like 'localbase_realtime_%' and active"
    )
    try:
        await conn.execute("create table if not exists scratch (id serial, body text)")
        for _ in range(20):  # ~8 MB of WAL: unpublished rows and published task updates
            await conn.execute(
                "insert into scratch (body) select repeat('x', 400) from generate_series(1, 1000)"
            )
            await conn.execute("update tasks set message = 'm' where true")
        await conn.execute(  # the newest WAL is unpublished: pgoutput sends nothing for it
            "insert into scratch (body) select repeat('y', 400) from generate_series(1, 5000)"
        )
        produced = await conn.fetchval(lag)
        assert produced > 4_000_000

        for _ in range(100):  # the idle stream reports the WAL end every few seconds
            if await conn.fetchval(lag) < 256_000:
                break
            await asyncio.sleep(0.1)
        assert await conn.fetchval(lag) < 256_000
    finally:
        await conn.execute("drop table if exists scratch")
        await conn.close()
