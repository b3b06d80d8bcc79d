"""Writes through postgrest-py: bulk insert, missing=default, upsert, update, delete, Prefer."""

from __future__ import annotations

import httpx
import pytest
from postgrest.exceptions import APIError
from postgrest.types import ReturnMethod
from supabase import AsyncClient

from localbase.server import LocalbaseThread

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("items")]


async def test_bulk_insert_missing_keys_null_or_default(service_client: AsyncClient) -> None:
    t = service_client.table("lbtest_items")
    nulls = (
        await t.insert(
            [{"id": 100, "name": "n100"}, {"id": 101, "name": "n101", "n": 7, "note": "x"}]
        ).execute()
    ).data
    defaults = (
        await t.insert(
            [{"id": 102, "name": "n102", "note": None}, {"id": 103, "name": "n103", "n": 1}],
            default_to_null=False,
        ).execute()
    ).data
    await t.delete().gte("id", 100).execute()

    assert [(row["id"], row["n"], row["note"]) for row in nulls] == [
        (100, None, None),
        (101, 7, "x"),
    ]
    # missing=default: absent keys take the column default, an explicit null stays null
    assert [(row["id"], row["note"], row["tags"]) for row in defaults] == [
        (102, None, []),
        (103, "fresh", []),
    ]


async def test_upsert_merge_and_ignore(
    localbase: LocalbaseThread, service_client: AsyncClient
) -> None:
    t = service_client.table("lbtest_items")
    await t.insert({"id": 110, "name": "u110", "n": 1}).execute()
    merged = (await t.upsert({"id": 110, "name": "u110", "n": 2}).execute()).data
    ignored = (
        await t.upsert(
            {"id": 111, "name": "u110", "n": 9}, on_conflict="name", ignore_duplicates=True
        ).execute()
    ).data
    by_name = (
        await t.upsert([{"id": 110, "name": "u110", "n": 3}], on_conflict="name").execute()
    ).data
    headers = {
        "apikey": localbase.keys.service_role_key,
        "Prefer": "resolution=merge-duplicates",
    }
    async with httpx.AsyncClient(base_url=f"{localbase.url}/rest/v1") as http:
        updated_only = await http.post(
            "/lbtest_items", json={"id": 110, "name": "u110", "n": 4}, headers=headers
        )
        inserted = await http.post(
            "/lbtest_items", json={"id": 112, "name": "u112"}, headers=headers
        )
    final = (await t.select("id, n").in_("id", [110, 111, 112]).order("id").execute()).data
    await t.delete().gte("id", 100).execute()

    assert merged == [{**merged[0], "id": 110, "n": 2}]
    assert ignored == []
    assert by_name[0]["n"] == 3
    assert (updated_only.status_code, inserted.status_code) == (200, 201)
    assert final == [{"id": 110, "n": 4}, {"id": 112, "n": None}]


async def test_update_delete_returning_and_counts(service_client: AsyncClient) -> None:
    t = service_client.table("lbtest_items")
    await t.insert([{"id": 120, "name": "d120"}, {"id": 121, "name": "d121"}]).execute()
    minimal = (
        await t.update({"n": 5}, count="exact", returning=ReturnMethod.minimal)
        .gte("id", 120)
        .execute()
    )
    selected = (await t.update({"n": 6}).eq("id", 120).select("id, n").execute()).data
    with pytest.raises(APIError) as too_many:
        await t.update({"n": 0}).gte("id", 120).max_affected(1).execute()
    deleted = await t.delete(count="exact").gte("id", 120).execute()

    assert minimal.data == [] and minimal.count == 2
    assert selected == [{"id": 120, "n": 6}]
    assert too_many.value.code == "PGRST124"
    assert deleted.count == 2
    assert sorted(row["n"] for row in deleted.data) == [5, 6]  # the refused update rolled back


async def test_singular_mutation_rolls_back(service_client: AsyncClient) -> None:
    t = service_client.table("lbtest_items")
    with pytest.raises(APIError) as error:
        await t.update({"note": "oops"}).in_("id", [1, 2]).single().execute()
    notes = (await t.select("note").in_("id", [1, 2]).order("id").execute()).data

    assert error.value.code == "PGRST116"
    assert notes == [{"note": None}, {"note": "ripe"}]


async def test_headers_only_and_patch_with_nothing_to_set(localbase: LocalbaseThread) -> None:
    headers = {"apikey": localbase.keys.service_role_key}
    async with httpx.AsyncClient(base_url=f"{localbase.url}/rest/v1", headers=headers) as http:
        created = await http.post(
            "/lbtest_items",
            json={"id": 130, "name": "h130"},
            headers={"Prefer": "return=headers-only"},
        )
        empty = await http.patch(
            "/lbtest_items",
            params={"id": "eq.130"},
            json={},
            headers={"Prefer": "return=representation"},
        )
        strict = await http.patch(
            "/lbtest_items",
            params={"id": "eq.130"},
            json={"n": 1},
            headers={"Prefer": "handling=strict, tx=maybe"},
        )
        await http.delete("/lbtest_items", params={"id": "eq.130"})

    assert created.status_code == 201 and created.content == b""
    assert created.headers["location"] == "/lbtest_items?id=eq.130"
    assert (empty.status_code, empty.json()) == (200, [])
    assert strict.status_code == 400 and strict.json()["code"] == "PGRST122"
