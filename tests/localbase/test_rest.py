"""/rest/v1 through the official client: RLS decides, errors keep PostgREST's shape."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from postgrest.exceptions import APIError
from supabase import AsyncClient

from localbase.server import LocalbaseThread
from tests.localbase.helpers import signed_in_user

pytestmark = pytest.mark.integration


async def test_users_see_only_their_own_tasks(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as alice, signed_in_user(localbase) as bob:
        mine = await alice.table("tasks").insert({"kind": "demo"}).execute()
        await bob.table("tasks").insert({"kind": "demo"}).execute()

        alice_rows = (await alice.table("tasks").select("id, user_id").execute()).data
        bob_view = await bob.table("tasks").select("id").eq("id", mine.data[0]["id"]).execute()

    assert [row["id"] for row in alice_rows] == [mine.data[0]["id"]]
    assert bob_view.data == []


async def test_insert_defaults_the_user_and_pending_state(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as alice:
        user = (await alice.auth.get_user()).user

        row = (
            await alice.table("tasks").insert({"kind": "demo", "params": {"a": 1}}).execute()
        ).data[0]

    assert row["user_id"] == user.id
    assert row["status"] == "pending" and row["progress"] == 0
    assert row["params"] == {"a": 1}


async def test_bulk_insert_and_column_list_select(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as alice:
        await (
            alice.table("tasks")
            .insert([{"kind": "bulk-a", "params": {}}, {"kind": "bulk-b", "params": {}}])
            .execute()
        )

        rows = (
            await alice.table("tasks")
            .select("kind")
            .in_("kind", ["bulk-a", "bulk-b"])
            .order("kind", desc=True)
            .limit(5)
            .execute()
        ).data

    assert rows == [{"kind": "bulk-b"}, {"kind": "bulk-a"}]


async def test_users_cannot_insert_finished_tasks(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as alice:
        with pytest.raises(APIError) as error:
            await alice.table("tasks").insert({"kind": "demo", "status": "completed"}).execute()

    assert error.value.code == "42501"


async def test_anon_key_without_a_user_gets_401_on_rls_violation(
    localbase: LocalbaseThread,
) -> None:
    headers = {"apikey": localbase.keys.anon_key, "Prefer": "return=representation"}
    async with httpx.AsyncClient(base_url=f"{localbase.url}/rest/v1") as http:
        response = await http.post("/tasks", json={"kind": "demo"}, headers=headers)

    assert response.status_code == 401
    assert response.json()["code"] == "42501"


async def test_users_cannot_change_status(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as alice:
        task = (await alice.table("tasks").insert({"kind": "demo"}).execute()).data[0]

        with pytest.raises(APIError) as error:
            await (
                alice.table("tasks").update({"status": "completed"}).eq("id", task["id"]).execute()
            )
        after = await alice.table("tasks").select("status").eq("id", task["id"]).single().execute()

    assert error.value.code == "42501"
    assert after.data == {"status": "pending"}


async def test_users_cannot_choose_system_columns_on_insert(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as alice:
        with pytest.raises(APIError) as error:
            await (
                alice.table("tasks")
                .insert({"kind": "demo", "created_at": "-infinity", "max_attempts": 10})
                .execute()
            )

    assert error.value.code == "42501"


async def test_single_with_no_rows_is_406_pgrst116(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as alice:
        with pytest.raises(APIError) as error:
            await alice.table("tasks").select("*").eq("kind", "none-such").single().execute()
        maybe = (
            await alice.table("tasks").select("*").eq("kind", "none-such").maybe_single().execute()
        )

    assert error.value.code == "PGRST116"
    assert maybe is None


async def test_service_role_sees_everything_and_may_update(
    localbase: LocalbaseThread, service_client: AsyncClient
) -> None:
    async with signed_in_user(localbase) as alice:
        task = (await alice.table("tasks").insert({"kind": "demo"}).execute()).data[0]

        updated = (
            await service_client.table("tasks")
            .update({"message": "looked at"})
            .eq("id", task["id"])
            .execute()
        ).data

    assert updated[0]["message"] == "looked at"
    assert updated[0]["updated_at"] > task["updated_at"]


async def test_unknown_table_column_and_operator_give_postgrest_errors(
    service_client: AsyncClient,
) -> None:
    with pytest.raises(APIError) as table:
        await service_client.table("nope").select("*").execute()
    with pytest.raises(APIError) as column:
        await service_client.table("tasks").select("nope").execute()
    with pytest.raises(APIError) as operator:
        await service_client.table("tasks").select("*").filter("id", "near", "1").execute()
    with pytest.raises(APIError) as payload:
        await service_client.table("tasks").insert({"kind": "x", "nope": 1}).execute()

    assert table.value.code == "PGRST205"
    assert column.value.code == "42703"
    assert operator.value.code == "PGRST100"
    assert payload.value.code == "PGRST204"


async def test_bad_values_and_bad_json_are_400(localbase: LocalbaseThread) -> None:
    headers = {"apikey": localbase.keys.service_role_key, "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=f"{localbase.url}/rest/v1") as http:
        bad_uuid = await http.get("/tasks", params={"id": "eq.not-a-uuid"}, headers=headers)
        bad_json = await http.post("/tasks", content=b"{nope", headers=headers)
        healthy = await http.get("/tasks", params={"limit": "1"}, headers=headers)

    assert bad_uuid.status_code == 400 and bad_uuid.json()["code"] == "22P02"
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "PGRST102"
    assert set(bad_json.json()) == {"code", "details", "hint", "message"}
    assert healthy.status_code == 200


async def test_bad_tokens_are_401(localbase: LocalbaseThread) -> None:
    forged = jwt.encode({"role": "service_role", "exp": 4102444800}, "x" * 40, algorithm="HS256")
    unsigned = jwt.encode({"role": "service_role", "exp": 4102444800}, None, algorithm="none")
    async with httpx.AsyncClient(base_url=f"{localbase.url}/rest/v1") as http:
        responses = [
            await http.get(
                "/tasks",
                headers={"apikey": localbase.keys.anon_key, "Authorization": f"Bearer {token}"},
            )
            for token in (forged, unsigned, "garbage")
        ]
        no_key = await http.get("/tasks")
        bad_key = await http.get("/tasks", headers={"apikey": "sb_publishable_nope"})

    assert [r.status_code for r in responses] == [401, 401, 401]
    assert all(r.json()["code"] == "PGRST301" for r in responses)
    assert no_key.status_code == 401 and bad_key.status_code == 401


async def test_other_schemas_are_not_exposed(localbase: LocalbaseThread) -> None:
    headers = {"apikey": localbase.keys.service_role_key, "Accept-Profile": "auth"}
    async with httpx.AsyncClient(base_url=f"{localbase.url}/rest/v1") as http:
        response = await http.get("/users", headers=headers)

    assert response.status_code == 406
    assert response.json()["code"] == "PGRST106"


async def test_count_exact_fills_content_range(service_client: AsyncClient) -> None:
    result = await service_client.table("tasks").select("id", count="exact").limit(1).execute()

    assert result.count is not None and result.count >= len(result.data)


async def test_requests_run_with_their_roles_statement_timeout(
    localbase: LocalbaseThread,
) -> None:
    from localbase.database import Database

    database = await Database.connect(localbase.postgres.dsn)
    try:
        async with database.as_claims({"role": "anon"}) as conn:
            anon = await conn.fetchval("show statement_timeout")
        async with database.as_claims({"role": "authenticated", "sub": "x"}) as conn:
            authenticated = await conn.fetchval("show statement_timeout")
        async with database.as_claims({"role": "service_role"}) as conn:
            service = await conn.fetchval("show statement_timeout")
    finally:
        await database.close()

    assert (anon, authenticated, service) == ("3s", "8s", "0")


async def test_prefer_timezone_renders_timestamps_in_that_zone(
    localbase: LocalbaseThread, service_client: Any
) -> None:
    async with signed_in_user(localbase) as alice:
        task = (await alice.table("tasks").insert({"kind": "tz"}).execute()).data[0]
    url = f"{localbase.url}/rest/v1/tasks?select=created_at&id=eq.{task['id']}"
    headers = {
        "apikey": localbase.keys.secret_key,
        "Authorization": f"Bearer {localbase.keys.service_role_key}",
    }
    async with httpx.AsyncClient() as http:
        tokyo = await http.get(url, headers={**headers, "Prefer": "timezone=Asia/Tokyo"})
        bogus = await http.get(url, headers={**headers, "Prefer": "timezone=Nowhere/Atlantis"})

    assert tokyo.json()[0]["created_at"].endswith("+09:00")
    assert tokyo.headers.get("preference-applied") == "timezone=Asia/Tokyo"
    assert bogus.json()[0]["created_at"].endswith("+00:00")
    assert "timezone" not in (bogus.headers.get("preference-applied") or "")
