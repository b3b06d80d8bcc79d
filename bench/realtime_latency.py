"""Commit -> postgres_changes frame at an official client, with N subscribed users (bench a).

    uv run python bench/realtime_latency.py [--users 200] [--rounds 300] [--runs 3]

A throw-away localbase runs in this process; N users (one socket each, official realtime
client) run in a child process, each watching UPDATEs of its own task (``id=eq.<id>``). The
child commits single-row updates straight through asyncpg, users in turn, and takes the time
from ``COMMIT`` returning to the user's callback. Prints p50 / p95 / p99 per run and the median
of the runs. The child's writer and clients share one process; the server does not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import statistics
import sys
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.realtime_common import (
    UserSpec,
    make_users,
    now,
    percentile,
    server,
    subscribe_all,
)
from localbase.database import parse_dsn


async def measure(
    url: str, anon_key: str, dsn: str, users: list[UserSpec], rounds: int, runs: int
) -> list[tuple[float, float, float]]:
    waiting: dict[tuple[int, int], asyncio.Future[float]] = {}

    def on_change(index: int, payload: dict) -> None:
        future = waiting.pop((index, payload["data"]["record"]["progress"]), None)
        if future is not None and not future.done():
            future.set_result(now())

    clients = await subscribe_all(url, anon_key, users, on_change)
    print(f"{len(clients)} users subscribed", flush=True)
    db = await asyncpg.connect(**parse_dsn(dsn))
    loop = asyncio.get_running_loop()
    results = []
    try:
        for run in range(runs):
            samples = []
            for n in range(rounds):
                index = n % len(users)
                progress = (run * rounds + n) % 100 + 1
                arrived = waiting.setdefault((index, progress), loop.create_future())
                await db.execute(
                    "update tasks set progress = $1 where id = $2",
                    progress,
                    users[index].task_id,
                )
                committed = now()
                samples.append((await asyncio.wait_for(arrived, 10) - committed) * 1000)
            figures = (percentile(samples, 50), percentile(samples, 95), percentile(samples, 99))
            print(
                f"run {run + 1}: n={len(samples)} p50={figures[0]:.2f} p95={figures[1]:.2f} "
                f"p99={figures[2]:.2f} max={max(samples):.2f} ms",
                flush=True,
            )
            results.append(figures)
    finally:
        await db.close()
        for client in clients:
            await client.close()
    return results


def child(args: tuple) -> list[tuple[float, float, float]]:
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(measure(*args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=300, help="commits per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with server() as runner:
        users = asyncio.run(make_users(runner, args.users))
        job = (runner.url, runner.keys.anon_key, runner.postgres.dsn, users, args.rounds, args.runs)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            results = pool.apply(child, (job,))
    p50 = statistics.median(r[0] for r in results)
    p99 = statistics.median(r[2] for r in results)
    print(f"median of {len(results)} runs: p50={p50:.2f} ms p99={p99:.2f} ms ({args.users} users)")


if __name__ == "__main__":
    main()
