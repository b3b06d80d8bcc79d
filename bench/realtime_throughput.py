"""Sustained changes/s with N subscribed RLS users, nothing lost or reordered (bench b).

    uv run python bench/realtime_throughput.py [--users 500] [--changes 6000] [--writers 4]
                                               [--runs 3]

A throw-away localbase runs in this process; N users (one socket each, official realtime
client, RLS on ``tasks``) run in a child process, each watching UPDATEs of its own task. The
child's writers (asyncpg, one connection each, disjoint users) commit single-row updates as
fast as they can, each carrying a per-user sequence number in ``message``. The rate is the
number of changes divided by the time from the first commit to the last frame received; every
user must receive exactly its sequence, in order. Also prints the server's RLS statements per
change (one statement covers all keys and claims of a batch).
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

from bench.realtime_common import UserSpec, make_users, now, server, subscribe_all
from localbase.database import parse_dsn


async def measure(
    url: str, anon_key: str, dsn: str, users: list[UserSpec], changes: int, writers: int, runs: int
) -> list[tuple[float, bool]]:
    received: list[list[int]] = [[] for _ in users]
    last = [0.0]

    def on_change(index: int, payload: dict) -> None:
        received[index].append(int(payload["data"]["record"]["message"]))
        last[0] = now()

    clients = await subscribe_all(url, anon_key, users, on_change)
    print(f"{len(clients)} users subscribed", flush=True)
    results = []
    sequence = 0
    try:
        for run in range(runs):
            for got in received:
                got.clear()
            per_writer = changes // writers
            expected: list[list[int]] = [[] for _ in users]

            async def write(
                w: int, start_seq: int, per_writer: int, expected: list[list[int]]
            ) -> None:
                db = await asyncpg.connect(**parse_dsn(dsn))
                try:
                    mine = list(range(w, len(users), writers))
                    for n in range(per_writer):
                        index = mine[n % len(mine)]
                        seq = start_seq + n
                        expected[index].append(seq)
                        await db.execute(
                            "update tasks set message = $1 where id = $2",
                            str(seq),
                            users[index].task_id,
                        )
                finally:
                    await db.close()

            started = now()
            await asyncio.gather(
                *(write(w, sequence + w * per_writer, per_writer, expected) for w in range(writers))
            )
            sequence += writers * per_writer
            total = writers * per_writer
            for _ in range(600):  # up to 60 s for the tail
                if sum(len(g) for g in received) >= total:
                    break
                await asyncio.sleep(0.1)
            rate = sum(len(g) for g in received) / (last[0] - started)
            exact = received == expected
            lost = total - sum(len(g) for g in received)
            print(
                f"run {run + 1}: {total} changes, {rate:.0f} changes/s delivered, "
                f"lost={lost}, in order and complete={exact}",
                flush=True,
            )
            results.append((rate, exact))
    finally:
        for client in clients:
            await client.close()
    return results


def child(args: tuple) -> list[tuple[float, bool]]:
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(measure(*args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--changes", type=int, default=6000, help="changes per run")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with server() as runner:
        users = asyncio.run(make_users(runner, args.users))
        visibility = runner.localbase.realtime.visibility
        queries_before = visibility.queries
        job = (
            runner.url,
            runner.keys.anon_key,
            runner.postgres.dsn,
            users,
            args.changes,
            args.writers,
            args.runs,
        )
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            results = pool.apply(child, (job,))
        statements = visibility.queries - queries_before
    rate = statistics.median(r[0] for r in results)
    total = args.changes // args.writers * args.writers * len(results)
    print(
        f"median of {len(results)} runs: {rate:.0f} changes/s with {args.users} RLS users, "
        f"all complete and ordered={all(r[1] for r in results)}, "
        f"server RLS/catalog statements per change={statements / total:.2f}"
    )


if __name__ == "__main__":
    main()
