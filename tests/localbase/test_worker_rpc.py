"""The worker rpc functions, as service_role through the official client."""

from __future__ import annotations

import asyncio

import pytest
from postgrest.exceptions import APIError
from supabase import AsyncClient

from localbase.server import LocalbaseThread
from tests.localbase.helpers import signed_in_user

pytestmark = pytest.mark.integration


async def _drain(service: AsyncClient) -> None:
    """Claim and fail whatever earlier tests left pending, so claims here are predictable."""
    while (await service.rpc("claim_task", {"p_worker_id": "drain"}).execute()).data:
        pass
    await service.table("tasks").update({"status": "failed"}).eq("worker_id", "drain").execute()


async def test_claim_progress_complete(
    localbase: LocalbaseThread, service_client: AsyncClient
) -> None:
    await _drain(service_client)
    async with signed_in_user(localbase) as alice:
        task = (await alice.table("tasks").insert({"kind": "demo"}).execute()).data[0]

        claimed = (await service_client.rpc("claim_task", {"p_worker_id": "w1"}).execute()).data
        cancel = await service_client.rpc(
            "report_progress",
            {"p_task_id": task["id"], "p_worker_id": "w1", "p_progress": 50, "p_message": "half"},
        ).execute()
        done = await service_client.rpc(
            "complete_task",
            {"p_task_id": task["id"], "p_worker_id": "w1", "p_result": {"answer": 42}},
        ).execute()
        seen = await alice.table("tasks").select("*").eq("id", task["id"]).single().execute()
        result = (
            await alice.table("task_results").select("payload").eq("task_id", task["id"]).execute()
        )

    assert [row["id"] for row in claimed] == [task["id"]]
    assert claimed[0]["status"] == "processing" and claimed[0]["attempts"] == 1
    assert cancel.data is False
    assert done.data["status"] == "completed" and done.data["progress"] == 100
    assert seen.data["result_id"] == done.data["result_id"]
    assert result.data == [{"payload": {"answer": 42}}]


async def test_fail_task_keeps_the_reason(
    localbase: LocalbaseThread, service_client: AsyncClient
) -> None:
    await _drain(service_client)
    async with signed_in_user(localbase) as alice:
        task = (await alice.table("tasks").insert({"kind": "demo"}).execute()).data[0]
        await service_client.rpc("claim_task", {"p_worker_id": "w2"}).execute()

        failed = await service_client.rpc(
            "fail_task", {"p_task_id": task["id"], "p_worker_id": "w2", "p_error": "step 3 broke"}
        ).execute()

    assert failed.data["status"] == "failed"
    assert failed.data["error_message"] == "step 3 broke"


async def test_a_worker_that_lost_the_task_gets_409(
    localbase: LocalbaseThread, service_client: AsyncClient
) -> None:
    await _drain(service_client)
    async with signed_in_user(localbase) as alice:
        task = (await alice.table("tasks").insert({"kind": "demo"}).execute()).data[0]
        await service_client.rpc("claim_task", {"p_worker_id": "w3"}).execute()

        with pytest.raises(APIError) as error:
            await service_client.rpc(
                "report_progress",
                {
                    "p_task_id": task["id"],
                    "p_worker_id": "intruder",
                    "p_progress": 1,
                    "p_message": None,
                },
            ).execute()

    assert error.value.code == "PT409"


async def test_users_cannot_call_worker_functions(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as alice:
        with pytest.raises(APIError) as error:
            await alice.rpc("claim_task", {"p_worker_id": "me"}).execute()

    assert error.value.code == "42501"


async def test_unknown_function_is_pgrst202(service_client: AsyncClient) -> None:
    with pytest.raises(APIError) as error:
        await service_client.rpc("claim_task", {"wrong": 1}).execute()

    assert error.value.code == "PGRST202"


async def test_concurrent_claims_never_share_a_task(
    localbase: LocalbaseThread, service_client: AsyncClient
) -> None:
    await _drain(service_client)
    async with signed_in_user(localbase) as alice:
        await alice.table("tasks").insert([{"kind": "demo"} for _ in range(6)]).execute()

        claims = await asyncio.gather(
            *(
                service_client.rpc("claim_task", {"p_worker_id": f"c{i}"}).execute()
                for i in range(10)
            )
        )

    ids = [row["id"] for claim in claims for row in claim.data]
    assert len(ids) == 6
    assert len(set(ids)) == 6
