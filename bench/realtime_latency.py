"""Commit -> postgres_changes frame at an official client, with N subscribed users.

    uv run python bench/realtime_latency.py [--users 50] [--rounds 200]

Starts a throw-away localbase in this process (temporary data dir, free port on 127.0.0.1),
signs in N anonymous users with the official client (one socket each), lets each subscribe to
UPDATEs of its own task (``id=eq.<id>``), then commits updates straight through asyncpg and
takes the time from ``COMMIT`` returning to the user's callback:

* single: one task per transaction, users in turn (``--rounds`` commits);
* batch: every user's task in one transaction (``--rounds / 10`` commits, N frames each),
  which shows the fan-out cost (one RLS query per subscriber).

Prints p50 / p95 / p99 in milliseconds. A figure, not a test: the stack and the clients share
this process and its GIL, so numbers include that contention.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supabase import AsyncClient, acreate_client

from localbase.database import parse_dsn
from localbase.server import LocalbaseThread


class User:
    """One signed-in user watching its own task."""

    def __init__(self, client: AsyncClient, task_id: str) -> None:
        self.client = client
        self.task_id = task_id
        self.waiting: dict[int, asyncio.Future[float]] = {}

    def on_change(self, payload: dict) -> None:
        progress = payload["data"]["record"]["progress"]
        future = self.waiting.pop(progress, None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())


async def sign_in_and_subscribe(url: str, anon_key: str, index: int) -> User:
    client = await acreate_client(url, anon_key)
    session = (await client.auth.sign_in_anonymously()).session
    await client.realtime.set_auth(session.access_token)  # before joining (protocol doc §1.3)
    row = (await client.table("tasks").insert({"kind": "demo", "params": {}}).execute()).data[0]
    user = User(client, row["id"])
    live = asyncio.Event()
    channel = client.channel(f"bench-{index}")
    channel.on_postgres_changes(
        "UPDATE", user.on_change, table="tasks", filter=f"id=eq.{row['id']}"
    )
    channel.on_system(lambda _: live.set())
    await channel.subscribe()
    await asyncio.wait_for(live.wait(), 10)
    return user


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return (
        f"n={len(ms)} p50={cuts[49]:.2f} p95={cuts[94]:.2f} p99={cuts[98]:.2f} max={ms[-1]:.2f} ms"
    )


async def run(runner: LocalbaseThread, users_count: int, rounds: int) -> None:
    users = []
    for start in range(0, users_count, 10):  # sign in in small groups to be gentle
        group = range(start, min(start + 10, users_count))
        users += await asyncio.gather(
            *(sign_in_and_subscribe(runner.url, runner.keys.anon_key, i) for i in group)
        )
    print(f"{len(users)} users subscribed")
    db = await asyncpg.connect(**parse_dsn(runner.postgres.dsn))
    loop = asyncio.get_running_loop()
    try:
        single = []
        for n in range(rounds):
            user = users[n % len(users)]
            progress = n % 100 + 1 if n % 100 + 1 != 0 else 1
            arrived = user.waiting.setdefault(progress, loop.create_future())
            await db.execute("update tasks set progress = $1 where id = $2", progress, user.task_id)
            committed = time.perf_counter()
            single.append(await asyncio.wait_for(arrived, 10) - committed)
        print("single:", percentiles(single))

        batch = []
        for n in range(max(rounds // 10, 2)):
            progress = n % 100 + 1
            arrivals = [u.waiting.setdefault(progress, loop.create_future()) for u in users]
            ids = [u.task_id for u in users]
            await db.execute(
                "update tasks set progress = $1 where id = any($2::uuid[])", progress, ids
            )
            committed = time.perf_counter()
            batch += [t - committed for t in await asyncio.wait_for(asyncio.gather(*arrivals), 30)]
        print("batch: ", percentiles(batch))
    finally:
        await db.close()
        for user in users:
            await user.client.realtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50, help="subscribed users (default 50)")
    parser.add_argument("--rounds", type=int, default=200, help="single-row commits (default 200)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="realtime-bench-") as data_dir:
        runner = LocalbaseThread(Path(data_dir), host="127.0.0.1", port=0)
        runner.start(timeout=120)
        try:
            asyncio.run(run(runner, args.users, args.rounds))
        finally:
            runner.stop()


if __name__ == "__main__":
    main()
