"""Cost of N idle subscribed users: database transactions/s and server CPU (bench c).

    uv run python bench/realtime_idle.py [--users 100] [--seconds 30] [--runs 3]

A throw-away localbase runs in this process; N users (one socket each, official realtime
client, heart-beating every 25 s) subscribe from a child process and then stay idle. Over each
window this process reads ``xact_commit + xact_rollback`` of the database from
``pg_stat_database`` (its own two reads subtracted) and its own CPU time (the gateway, the
realtime service and the replication thread; postgres processes are not included), and the
statements the realtime service itself sent (exact, from its own counter). Statistics of the
set-up phase can reach pg_stat_database late, and autovacuum counts there too, hence a
warm-up before the first window.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.realtime_common import UserSpec, cpu_seconds, make_users, server, subscribe_all
from localbase.database import parse_dsn

XACTS = (
    "select xact_commit + xact_rollback from pg_stat_database where datname = current_database()"
)


async def stay_subscribed(
    url: str, anon_key: str, users: list[UserSpec], ready: object, done: object
) -> None:
    clients = await subscribe_all(url, anon_key, users, lambda i, p: None)
    ready.set()  # type: ignore[attr-defined]
    await asyncio.to_thread(done.wait)  # type: ignore[attr-defined]
    for client in clients:
        await client.close()


def child(url: str, anon_key: str, users: list[UserSpec], ready: object, done: object) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(stay_subscribed(url, anon_key, users, ready, done))


async def window(dsn: str, seconds: float, settle: float) -> tuple[float, float]:
    conn = await asyncpg.connect(**parse_dsn(dsn))
    try:
        await asyncio.sleep(settle)  # let statistics of earlier activity arrive
        before_x = await conn.fetchval(XACTS)
        before_cpu, started = cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        cpu = (cpu_seconds() - before_cpu) / elapsed * 100
        await conn.execute("select pg_stat_clear_snapshot()")
        after_x = await conn.fetchval(XACTS)
    finally:
        await conn.close()
    return (after_x - before_x - 2) / elapsed, cpu  # minus this connection's own reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    context = multiprocessing.get_context("spawn")
    with server() as runner:
        users = asyncio.run(make_users(runner, args.users))
        ready, done = context.Event(), context.Event()
        process = context.Process(
            target=child, args=(runner.url, runner.keys.anon_key, users, ready, done)
        )
        process.start()
        try:
            if not ready.wait(300):
                raise SystemExit("clients did not subscribe within 300 s")
            print(f"{len(users)} users subscribed and idle", flush=True)
            figures = []
            visibility = runner.localbase.realtime.visibility
            for run in range(args.runs):
                sent = visibility.queries
                settle = 15.0 if run == 0 else 1.0
                rate, cpu = asyncio.run(window(runner.postgres.dsn, args.seconds, settle))
                print(
                    f"run {run + 1}: {rate:.2f} database transactions/s, realtime statements "
                    f"{visibility.queries - sent}, server CPU {cpu:.2f} % of a core",
                    flush=True,
                )
                figures.append((rate, cpu))
        finally:
            done.set()
            process.join(30)
            if process.is_alive():
                process.kill()
    print(
        f"median of {len(figures)} runs: {statistics.median(f[0] for f in figures):.2f} "
        f"transactions/s, {statistics.median(f[1] for f in figures):.2f} % of one core "
        f"({args.users} idle users)"
    )


if __name__ == "__main__":
    main()
