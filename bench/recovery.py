"""How fast a viewer shows the true state again after its connection is cut mid-task.

    uv run python bench/recovery.py [--cuts 10] [--min-outage 0.5] [--max-outage 4] [--seed 1]

Starts a throw-away localbase in this process (temporary data dir, free port on 127.0.0.1), a
worker talking to it directly, and one viewer (SupabaseSession + TaskContext with default
timings) that reaches it only through a TCP proxy on 127.0.0.1. For each cut: submit a demo task
(about 2 s of work), wait until the viewer shows progress, reset every proxied connection and
refuse new ones for a random outage, then restore. Time-to-correct-state runs from the restore
until the viewer shows the task's final row (status and progress as stored in Postgres); a cut
is recovered when that happens within `--deadline` seconds.

Prints `recovered X of N, p95 time-to-correct-state Y ms`. A figure, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localbase.database import parse_dsn
from localbase.server import LocalbaseThread
from services.jobs import JobRegistry
from services.supabase_session import SupabaseSession
from services.task_context import TaskContext
from services.worker import Worker
from tests.faults.proxy import TcpProxy


async def stored(conn: asyncpg.Connection, task_id: str) -> tuple[str, int]:
    row = await conn.fetchrow("select status, progress from public.tasks where id = $1", task_id)
    return row["status"], row["progress"]


async def one_cut(
    session: SupabaseSession, proxy: TcpProxy, conn: asyncpg.Connection, outage: float,
    deadline: float,
) -> float | None:  # fmt: skip
    """Milliseconds from restore to the correct final state, or None when not recovered."""
    task = await session.submit("demo", {"steps": 20, "step_seconds": 0.1})
    context = TaskContext(session)
    running = asyncio.Event()
    context.add_listener(lambda view: running.set() if view.progress > 0 else None)
    try:
        await context.set_task(task.id, initial=task)
        await asyncio.wait_for(running.wait(), 20)
        proxy.sever(refuse=True)
        await asyncio.sleep(outage)
        proxy.restore()
        restored = time.perf_counter()
        while time.perf_counter() - restored < deadline:
            status, progress = await stored(conn, task.id)
            view = context.view
            if status in ("completed", "failed", "cancelled") and (
                view.status == status and view.progress == progress
            ):
                return (time.perf_counter() - restored) * 1000
            await asyncio.sleep(0.01)
        return None
    finally:
        await context.dispose()


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="tasklight-recovery-") as tmp:
        stack = LocalbaseThread(Path(tmp), "127.0.0.1", 0)
        await asyncio.to_thread(stack.start, 120)
        proxy = TcpProxy(int(stack.url.rsplit(":", 1)[1]))
        await proxy.start()
        worker = Worker(stack.url, stack.keys.secret_key, JobRegistry.with_builtins(),
                        poll_seconds=1.0)  # fmt: skip
        working = asyncio.create_task(worker.run())
        session = await SupabaseSession.open(proxy.url, stack.keys.publishable_key)
        conn = await asyncpg.connect(**parse_dsn(stack.postgres.dsn))
        times: list[float] = []
        try:
            for n in range(args.cuts):
                outage = rng.uniform(args.min_outage, args.max_outage)
                took = await one_cut(session, proxy, conn, outage, args.deadline)
                shown = "not recovered" if took is None else f"{took:.0f} ms"
                print(f"cut {n + 1}: outage {outage:.1f} s, {shown}", flush=True)
                if took is not None:
                    times.append(took)
        finally:
            await conn.close()
            await session.close()
            worker.stop()
            await asyncio.wait({working}, timeout=15)
            await proxy.close()
            await asyncio.to_thread(stack.stop)
    p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)] if times else float("nan")
    print(f"recovered {len(times)} of {args.cuts}, p95 time-to-correct-state {p95:.0f} ms")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", type=int, default=10)
    parser.add_argument("--min-outage", type=float, default=0.5)
    parser.add_argument("--max-outage", type=float, default=4.0)
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parse_args()))
