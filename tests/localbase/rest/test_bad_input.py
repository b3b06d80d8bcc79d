"""Bad input gets PostgREST-shaped errors, one request fails alone; keys old and new work."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest
from supabase import AsyncClient, acreate_client

from localbase.server import LocalbaseThread

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("items")]

SHAPE = {"code", "details", "hint", "message"}


async def test_bad_requests_fail_alone_with_postgrest_errors(localbase: LocalbaseThread) -> None:
    key = localbase.keys.service_role_key
    expired = jwt.encode(
        {"role": "service_role", "exp": int(time.time()) - 120}, localbase.keys.jwt_secret
    )
    no_role_secret = jwt.encode({"exp": 4102444800}, "wrong-secret-" * 4, algorithm="HS256")
    async with httpx.AsyncClient(
        base_url=f"{localbase.url}/rest/v1", headers={"apikey": key}
    ) as http:
        responses = {
            "bad json": await http.post(
                "/lbtest_items", content=b'{"id": 1,', headers={"Content-Type": "application/json"}
            ),
            "not objects": await http.post("/lbtest_items", json=[1, 2]),
            "unknown table": await http.get("/nope"),
            "unknown column": await http.get("/lbtest_items", params={"nope": "eq.1"}),
            "unknown operator": await http.get("/lbtest_items", params={"id": "near.1"}),
            "bad value": await http.get("/lbtest_items", params={"id": "eq.one"}),
            "bad cast": await http.get("/lbtest_items", params={"select": "id::no_such_type"}),
            "bad logic": await http.get("/lbtest_items", params={"or": "(id.eq.1"}),
            "bad limit": await http.get("/lbtest_items", params={"limit": "-1"}),
            "bad range": await http.get("/lbtest_items", headers={"Range": "5-2"}),
            "expired": await http.get(
                "/lbtest_items", headers={"Authorization": f"Bearer {expired}"}
            ),
            "wrong secret": await http.get(
                "/lbtest_items", headers={"Authorization": f"Bearer {no_role_secret}"}
            ),
            "too large": await http.post(
                "/lbtest_items",
                content=b"[" + b'{"id": 1},' * 1_100_000 + b'{"id": 2}]',
                headers={"Content-Type": "application/json"},
            ),
        }
        healthy = await http.get("/lbtest_items", params={"select": "id", "id": "eq.1"})

    statuses = {name: (r.status_code, r.json()["code"]) for name, r in responses.items()}
    assert statuses == {
        "bad json": (400, "PGRST102"),
        "not objects": (400, "PGRST102"),
        "unknown table": (404, "PGRST205"),
        "unknown column": (400, "42703"),
        "unknown operator": (400, "PGRST100"),
        "bad value": (400, "22P02"),
        "bad cast": (400, "42704"),
        "bad logic": (400, "PGRST100"),
        "bad limit": (400, "PGRST100"),
        "bad range": (416, "PGRST103"),
        "expired": (401, "PGRST303"),
        "wrong secret": (401, "PGRST301"),
        "too large": (413, "413"),
    }
    assert all(set(r.json()) == SHAPE for r in responses.values())
    assert responses["expired"].headers["www-authenticate"].startswith("Bearer")
    assert healthy.json() == [{"id": 1}]


@pytest.mark.parametrize("which", ["legacy", "opaque"])
async def test_secret_and_service_keys_bypass_rls_publishable_and_anon_do_not(
    localbase: LocalbaseThread, which: str
) -> None:
    keys = localbase.keys
    secret, public = (
        (keys.service_role_key, keys.anon_key)
        if which == "legacy"
        else (keys.secret_key, keys.publishable_key)
    )
    clients: list[AsyncClient] = [
        await acreate_client(localbase.url, key) for key in (public, secret, public)
    ]
    user, admin, stranger = clients
    try:
        signed_in = await user.auth.sign_in_anonymously()
        await asyncio.sleep(0)  # the token reaches postgrest through a scheduled task
        task = (await user.table("tasks").insert({"kind": "keys"}).execute()).data[0]
        seen_by_admin = (
            await admin.table("tasks").select("id").eq("id", task["id"]).execute()
        ).data
        seen_by_stranger = (
            await stranger.table("tasks").select("id").eq("id", task["id"]).execute()
        ).data
    finally:
        for client in clients:
            await client.postgrest.aclose()
            await client.auth.close()

    assert signed_in.session is not None
    assert task["user_id"] == signed_in.user.id
    assert seen_by_admin == [{"id": task["id"]}]
    assert seen_by_stranger == []  # RLS: no user, no rows


async def test_opaque_key_as_bearer_and_unknown_opaque_key(localbase: LocalbaseThread) -> None:
    async with httpx.AsyncClient(base_url=f"{localbase.url}/rest/v1") as http:
        as_bearer = await http.get(
            "/lbtest_items",
            params={"select": "id", "id": "eq.2"},
            headers={
                "apikey": localbase.keys.publishable_key,
                "Authorization": f"Bearer {localbase.keys.secret_key}",
            },
        )
        unknown = await http.get("/lbtest_items", headers={"apikey": "sb_secret_not-this-project"})
    async with httpx.AsyncClient(base_url=f"{localbase.url}/auth/v1") as http:
        auth_unknown = await http.get(
            "/settings",
            headers={"apikey": "sb_publishable_nope", "X-Supabase-Api-Version": "2024-01-01"},
        )
        auth_known = await http.get("/settings", headers={"apikey": localbase.keys.secret_key})

    assert as_bearer.json() == [{"id": 2}]
    assert unknown.status_code == 401 and unknown.json()["code"] == "PGRST301"
    assert auth_unknown.status_code == 401 and auth_unknown.json()["code"] == "invalid_api_key"
    assert auth_known.status_code == 200
