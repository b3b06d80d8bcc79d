"""rpc through postgrest-py: POST and GET, scalars, sets with filters, void, read-only GET."""

from __future__ import annotations

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import AsyncClient

from localbase.server import LocalbaseThread

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("items")]


async def test_scalar_functions_by_post_and_get(service_client: AsyncClient) -> None:
    posted = (await service_client.rpc("lbtest_add", {"a": 2}).execute()).data
    got = (await service_client.rpc("lbtest_add", {"a": 2, "b": 5}, get=True).execute()).data
    names = (await service_client.rpc("lbtest_names").limit(2).execute()).data

    assert (posted, got) == (3, 7)
    assert names == ["apple", "banana"]


async def test_set_returning_functions_take_select_filters_order_and_count(
    service_client: AsyncClient,
) -> None:
    over = (
        await service_client.rpc("lbtest_over", {"min_n": 2}, count="exact")
        .select("name")
        .neq("name", "date")
        .order("n", desc=True)
        .execute()
    )
    pairs = (await service_client.rpc("lbtest_pairs", get=True).gte("x", 2).execute()).data
    one = (await service_client.rpc("lbtest_pairs").eq("x", 3).single().execute()).data
    composite = (await service_client.rpc("lbtest_first").execute()).data

    assert over.data == [{"name": "banana"}, {"name": "apple"}] and over.count == 2
    assert pairs == [{"x": 2, "y": "b"}, {"x": 3, "y": "c"}]
    assert one == {"x": 3, "y": "c"}
    assert composite["name"] == "apple"


async def test_void_and_read_only_get(
    localbase: LocalbaseThread, service_client: AsyncClient
) -> None:
    headers = {"apikey": localbase.keys.service_role_key}
    async with httpx.AsyncClient(base_url=f"{localbase.url}/rest/v1", headers=headers) as http:
        void = await http.post("/rpc/lbtest_touch", json={"p_id": 5})
    with pytest.raises(APIError) as read_only:
        await service_client.rpc("lbtest_touch", {"p_id": 4}, get=True).execute()
    with pytest.raises(APIError) as missing:
        await service_client.rpc("lbtest_add", {"nope": 1}).execute()
    notes = (
        await service_client.table("lbtest_items")
        .select("note")
        .in_("id", [4, 5])
        .order("id")
        .execute()
    ).data
    await service_client.table("lbtest_items").update({"note": "big"}).eq("id", 5).execute()

    assert (void.status_code, void.content) == (204, b"")
    assert read_only.value.code == "25006"
    assert missing.value.code == "PGRST202"
    assert notes == [{"note": None}, {"note": "touched"}]
