"""REST latency through the official client (postgrest-py): select by id, insert, rpc.

    uv run python bench/rest_latency.py [--rounds 500]

Starts a throw-away localbase in this process (temporary data dir, free port on 127.0.0.1),
signs in one anonymous user with the official async client, and times, one request at a time:

* select: ``tasks.select("*").eq("id", <id>).single()`` as that user (RLS applies);
* select raw: the same GET with httpx alone (no client-side builder and parsing);
* insert: ``tasks.insert({...})`` with ``return=representation``;
* rpc: ``claim_task`` as the service role (FOR UPDATE SKIP LOCKED, usually no row).

Prints p50 / p95 / p99 in milliseconds. A figure, not a test: the stack and the client share
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
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supabase import acreate_client

from localbase.server import LocalbaseThread


async def timed(rounds: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    for index in range(min(20, rounds)):  # warm up pools and caches
        await call(index)
    samples = []
    for index in range(rounds):
        started = time.perf_counter()
        await call(index)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def report(name: str, samples: list[float]) -> None:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    print(
        f"{name:<11} n={len(samples):<5} p50={cuts[49]:6.2f} ms  p95={cuts[94]:6.2f} ms"
        f"  p99={cuts[98]:6.2f} ms"
    )


async def run(url: str, publishable_key: str, secret_key: str, rounds: int) -> None:
    user = await acreate_client(url, publishable_key)
    admin = await acreate_client(url, secret_key)
    session = (await user.auth.sign_in_anonymously()).session
    await asyncio.sleep(0)
    ids = [
        row["id"]
        for row in (
            await user.table("tasks").insert([{"kind": "bench"} for _ in range(50)]).execute()
        ).data
    ]
    headers = {
        "apikey": publishable_key,
        "Authorization": f"Bearer {session.access_token}",
        "Accept": "application/vnd.pgrst.object+json",
    }
    async with httpx.AsyncClient(base_url=f"{url}/rest/v1", headers=headers) as http:

        async def select(index: int) -> object:
            task_id = ids[index % len(ids)]
            return await user.table("tasks").select("*").eq("id", task_id).single().execute()

        async def select_raw(index: int) -> object:
            response = await http.get(
                "/tasks", params={"select": "*", "id": f"eq.{ids[index % len(ids)]}"}
            )
            response.raise_for_status()
            return response

        async def insert(index: int) -> object:
            return await user.table("tasks").insert({"kind": "bench", "params": {}}).execute()

        async def rpc(index: int) -> object:
            return await admin.rpc("claim_task", {"p_worker_id": "bench"}).execute()

        report("select", await timed(rounds, select))
        report("select raw", await timed(rounds, select_raw))
        report("insert", await timed(rounds, insert))
        report("rpc", await timed(max(rounds // 5, 20), rpc))
    for client in (user, admin):
        await client.postgrest.aclose()
        await client.auth.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="rest-bench-") as data_dir:
        runner = LocalbaseThread(Path(data_dir), host="127.0.0.1", port=0)
        runner.start(timeout=120)
        try:
            keys = runner.keys
            asyncio.run(run(runner.url, keys.publishable_key, keys.secret_key, args.rounds))
        finally:
            runner.stop()


if __name__ == "__main__":
    main()
