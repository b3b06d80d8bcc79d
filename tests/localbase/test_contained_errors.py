"""Inputs that used to escape as 500s and drop the keep-alive connection."""

from __future__ import annotations

import httpx
import pytest

from localbase.server import LocalbaseThread

pytestmark = pytest.mark.integration


async def test_deep_nesting_is_a_400_and_the_connection_keeps_serving(
    localbase: LocalbaseThread,
) -> None:
    headers = {"apikey": localbase.keys.anon_key}
    async with httpx.AsyncClient(base_url=localbase.url, headers=headers) as http:
        body = await http.post("/rest/v1/tasks", content="[" * 5000 + "]" * 5000)
        nested = "(and" * 2000 + "(id.eq.1" + ")" * 2001
        filters = await http.get(f"/rest/v1/tasks?and={nested}")
        after = await http.get("/rest/v1/tasks?select=id&limit=1")

    assert (body.status_code, body.json()["code"]) == (400, "PGRST102")
    assert (filters.status_code, filters.json()["code"]) == (400, "PGRST100")
    assert after.status_code == 200


async def test_a_nul_in_a_refresh_token_is_a_400(localbase: LocalbaseThread) -> None:
    headers = {"apikey": localbase.keys.anon_key, "X-Supabase-Api-Version": "2024-01-01"}
    async with httpx.AsyncClient(base_url=localbase.url, headers=headers) as http:
        refused = await http.post(
            "/auth/v1/token?grant_type=refresh_token", json={"refresh_token": "ab\u0000cd"}
        )
        after = await http.get("/auth/v1/health")

    assert (refused.status_code, refused.json()["code"]) == (400, "validation_failed")
    assert after.status_code == 200


async def test_huge_offsets_and_ranges_mean_no_rows(localbase: LocalbaseThread) -> None:
    headers = {"apikey": localbase.keys.anon_key}
    async with httpx.AsyncClient(base_url=localbase.url, headers=headers) as http:
        by_offset = await http.get("/rest/v1/tasks?select=id&offset=99999999999999999999")
        by_range = await http.get(
            "/rest/v1/tasks?select=id", headers={"Range": "99999999999999999999-"}
        )

    assert (by_offset.status_code, by_offset.json()) == (200, [])
    assert by_range.status_code in (200, 206, 416)
    assert by_range.json() == [] or by_range.json().get("code") == "PGRST103"
