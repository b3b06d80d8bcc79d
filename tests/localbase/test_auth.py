"""/auth/v1 through the official client and raw HTTP."""

from __future__ import annotations

import httpx
import pytest
from supabase_auth.errors import AuthApiError

from localbase.server import LocalbaseThread
from tests.localbase.helpers import signed_in_user

pytestmark = pytest.mark.integration


async def test_anonymous_sign_in_gives_a_full_session(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as client:
        session = await client.auth.get_session()

    assert session is not None
    assert session.user.is_anonymous
    assert session.expires_in > 10
    assert localbase.keys.decode(session.access_token)["is_anonymous"] is True


async def test_refresh_rotates_and_the_old_token_is_spent(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as client:
        first = await client.auth.get_session()
        refreshed = await client.auth.refresh_session()
        second = await client.auth.refresh_session()

        assert refreshed.session.refresh_token != first.refresh_token
        assert second.session.user.id == first.user.id
        with pytest.raises(AuthApiError) as error:
            await client.auth.refresh_session(first.refresh_token)

    assert error.value.code == "refresh_token_already_used"


async def test_unknown_refresh_token_is_rejected(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as client:
        with pytest.raises(AuthApiError) as error:
            await client.auth.refresh_session("nonexistent")

    assert error.value.code == "refresh_token_not_found"
    assert error.value.status == 400


async def test_sign_out_revokes_the_session(localbase: LocalbaseThread) -> None:
    async with signed_in_user(localbase) as client:
        session = await client.auth.get_session()
        await client.auth.sign_out()

        with pytest.raises(AuthApiError) as error:
            await client.auth.get_user(session.access_token)

    assert error.value.code == "session_not_found"


async def test_auth_errors_echo_the_api_version(localbase: LocalbaseThread) -> None:
    async with httpx.AsyncClient(base_url=f"{localbase.url}/auth/v1") as http:
        versioned = {"apikey": localbase.keys.anon_key, "X-Supabase-Api-Version": "2024-01-01"}
        no_bearer = await http.get("/user", headers=versioned)
        bad_jwt = await http.get("/user", headers={**versioned, "Authorization": "Bearer x.y.z"})
        bad_json = await http.post("/signup", content=b"{", headers=versioned)
        legacy = await http.post(
            "/signup", content=b"{", headers={"apikey": localbase.keys.anon_key}
        )
        health = await http.get("/health")

    assert no_bearer.status_code == 401 and no_bearer.json()["code"] == "no_authorization"
    assert bad_jwt.status_code == 403 and bad_jwt.json()["code"] == "bad_jwt"
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "bad_json"
    assert no_bearer.headers["x-supabase-api-version"] == "2024-01-01"
    # Without the version header GoTrue answers in its legacy shape.
    assert legacy.json() == {
        "code": 400,
        "error_code": "bad_json",
        "msg": bad_json.json()["message"],
    }
    assert health.status_code == 200
