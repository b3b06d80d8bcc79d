"""Email + password auth, user updates, rate limits and token lifetime, via the official client."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from supabase import AsyncClient, acreate_client
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from localbase.auth import AuthConfig, create_auth_app
from localbase.auth.service import ADDRESS_LIMIT_FACTOR
from localbase.database import Database
from localbase.server import LocalbaseThread

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@Example.com"


@contextlib.asynccontextmanager
async def _client(localbase: LocalbaseThread, key: str | None = None) -> AsyncIterator[AsyncClient]:
    client = await acreate_client(localbase.url, key or localbase.keys.publishable_key)
    try:
        yield client
    finally:
        timer = getattr(client.auth, "_refresh_token_timer", None)
        if timer is not None:
            timer.cancel()
        if getattr(client, "_postgrest", None) is not None:
            await client._postgrest.aclose()
        await client.auth.close()


async def test_sign_up_is_auto_confirmed_and_returns_a_session(localbase: LocalbaseThread) -> None:
    email = _email()
    async with _client(localbase) as client:
        signed_up = await client.auth.sign_up(
            {"email": email, "password": PASSWORD, "options": {"data": {"name": "Ada"}}}
        )
        await asyncio.sleep(0)
        task = (await client.table("tasks").insert({"kind": "demo"}).execute()).data[0]

    assert signed_up.session is not None
    user = signed_up.user
    assert user.email == email.lower() and not user.is_anonymous
    assert user.email_confirmed_at is not None and user.confirmed_at is not None
    assert user.app_metadata == {"provider": "email", "providers": ["email"]}
    assert user.user_metadata["name"] == "Ada" and user.user_metadata["email_verified"] is True
    assert [identity.provider for identity in user.identities] == ["email"]
    assert user.identities[0].identity_data["email"] == email.lower()
    claims = localbase.keys.decode(signed_up.session.access_token)
    assert claims["amr"][0]["method"] == "password" and claims["email"] == email.lower()
    assert task["user_id"] == user.id


async def test_sign_in_with_password_and_wrong_credentials(localbase: LocalbaseThread) -> None:
    email = _email()
    async with _client(localbase) as client:
        created = await client.auth.sign_up({"email": email, "password": PASSWORD})
        signed_in = await client.auth.sign_in_with_password(
            {"email": email.upper(), "password": PASSWORD}
        )
        with pytest.raises(AuthApiError) as wrong:
            await client.auth.sign_in_with_password({"email": email, "password": "nope-nope"})
        with pytest.raises(AuthApiError) as unknown:
            await client.auth.sign_in_with_password(
                {"email": "nobody@example.com", "password": PASSWORD}
            )

    assert signed_in.user.id == created.user.id
    assert signed_in.session.refresh_token != created.session.refresh_token
    assert (wrong.value.status, wrong.value.code) == (400, "invalid_credentials")
    assert str(wrong.value) == "Invalid login credentials"
    assert (unknown.value.status, unknown.value.code) == (400, "invalid_credentials")


async def test_sign_up_errors_have_gotrue_codes(localbase: LocalbaseThread) -> None:
    email = _email()
    async with _client(localbase) as client:
        await client.auth.sign_up({"email": email, "password": PASSWORD})
        with pytest.raises(AuthApiError) as exists:
            await client.auth.sign_up({"email": email, "password": PASSWORD})
        with pytest.raises(AuthWeakPasswordError) as weak:
            await client.auth.sign_up({"email": _email(), "password": "abc"})
        with pytest.raises(AuthApiError) as too_long:
            await client.auth.sign_up({"email": _email(), "password": "x" * 73})
        with pytest.raises(AuthApiError) as bad_email:
            await client.auth.sign_up({"email": "not an email", "password": PASSWORD})

    assert (exists.value.status, exists.value.code) == (422, "user_already_exists")
    assert (weak.value.status, weak.value.code) == (422, "weak_password")
    assert weak.value.reasons == ["length"]
    assert str(weak.value) == "Password should be at least 6 characters."
    assert (too_long.value.status, too_long.value.code) == (400, "validation_failed")
    assert (bad_email.value.status, bad_email.value.code) == (400, "validation_failed")


async def test_update_user_metadata_email_and_password(localbase: LocalbaseThread) -> None:
    email = _email()
    async with _client(localbase) as client:
        await client.auth.sign_up(
            {"email": email, "password": PASSWORD, "options": {"data": {"a": 1, "b": 2}}}
        )
        merged = await client.auth.update_user({"data": {"b": None, "c": 3}})
        await client.auth.update_user({"password": PASSWORD + "!"})
        with pytest.raises(AuthApiError) as same:
            await client.auth.update_user({"password": PASSWORD + "!"})
        fetched = await client.auth.get_user()

    async with _client(localbase) as other:
        again = await other.auth.sign_in_with_password({"email": email, "password": PASSWORD + "!"})

    metadata = merged.user.user_metadata
    assert metadata["a"] == 1 and metadata["c"] == 3 and "b" not in metadata
    assert fetched.user.user_metadata == metadata
    assert (same.value.status, same.value.code) == (422, "same_password")
    assert again.user.id == merged.user.id


async def test_anonymous_user_becomes_permanent_with_email_and_password(
    localbase: LocalbaseThread,
) -> None:
    email = _email()
    async with _client(localbase) as client:
        anonymous = await client.auth.sign_in_anonymously()
        updated = await client.auth.update_user({"email": email})
        await client.auth.update_user({"password": PASSWORD})
    async with _client(localbase) as other:
        signed_in = await other.auth.sign_in_with_password({"email": email, "password": PASSWORD})
        unchanged = await other.auth.update_user({"email": email.upper()})
    async with _client(localbase) as someone_else:
        await someone_else.auth.sign_up({"email": _email(), "password": PASSWORD})
        with pytest.raises(AuthApiError) as taken:
            await someone_else.auth.update_user({"email": email})

    assert anonymous.user.is_anonymous
    assert updated.user.id == anonymous.user.id and not updated.user.is_anonymous
    assert updated.user.email == email.lower()
    assert signed_in.user.id == anonymous.user.id
    assert unchanged.user.email == email.lower()  # its own email again: no change, no error
    assert (taken.value.status, taken.value.code) == (422, "email_exists")


async def test_sign_out_scopes(localbase: LocalbaseThread) -> None:
    email = _email()
    async with (
        _client(localbase) as first,
        _client(localbase) as second,
        _client(localbase) as third,
    ):
        await first.auth.sign_up({"email": email, "password": PASSWORD})
        second_session = (
            await second.auth.sign_in_with_password({"email": email, "password": PASSWORD})
        ).session
        third_session = (
            await third.auth.sign_in_with_password({"email": email, "password": PASSWORD})
        ).session
        await first.auth.sign_out({"scope": "others"})
        assert (await first.auth.get_user()) is not None
        for session in (second_session, third_session):
            with pytest.raises(AuthApiError) as gone:
                await first.auth.get_user(session.access_token)
            assert gone.value.code == "session_not_found"
        await first.auth.sign_out({"scope": "local"})
        assert await first.auth.get_session() is None


@contextlib.asynccontextmanager
async def _private_auth(
    localbase: LocalbaseThread, config: AuthConfig
) -> AsyncIterator[httpx.AsyncClient]:
    """A second auth app with its own settings, on the shared database, over ASGI."""
    database = await Database.connect(localbase.postgres.dsn, min_size=1, max_size=2)
    app = create_auth_app(database, localbase.keys, config)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 4000))
    headers = {"apikey": localbase.keys.anon_key, "X-Supabase-Api-Version": "2024-01-01"}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=headers
        ) as http:
            yield http
    finally:
        await database.close()


async def test_sign_in_attempts_are_rate_limited_per_ip_and_email(
    localbase: LocalbaseThread,
) -> None:
    config = AuthConfig(sign_in_rate_limit=3, sign_in_rate_window=60)
    async with _private_auth(localbase, config) as http:
        attempts = [
            await http.post(
                "/token",
                params={"grant_type": "password"},
                json={"email": "victim@example.com", "password": "guess-guess"},
            )
            for _ in range(4)
        ]
        other_email = await http.post(
            "/token",
            params={"grant_type": "password"},
            json={"email": "other@example.com", "password": "guess-guess"},
        )

    assert [r.status_code for r in attempts] == [400, 400, 400, 429]
    assert attempts[-1].json() == {
        "code": "over_request_rate_limit",
        "message": "Request rate limit reached",
    }
    assert other_email.status_code == 400


async def test_one_address_trying_many_logins_is_limited_too(localbase: LocalbaseThread) -> None:
    config = AuthConfig(sign_in_rate_limit=2, sign_in_rate_window=60)
    async with _private_auth(localbase, config) as http:
        statuses = [
            (
                await http.post(
                    "/token",
                    params={"grant_type": "password"},
                    json={"email": f"junk{i}@example.com", "password": "guess-guess"},
                )
            ).status_code
            for i in range(2 * ADDRESS_LIMIT_FACTOR + 1)
        ]

    assert statuses[:-1] == [400] * (2 * ADDRESS_LIMIT_FACTOR)
    assert statuses[-1] == 429


async def test_access_token_lifetime_is_configurable(localbase: LocalbaseThread) -> None:
    async with _private_auth(localbase, AuthConfig(access_token_lifetime=120)) as http:
        response = await http.post("/signup", json={"data": {}})

    session = response.json()
    claims = localbase.keys.decode(session["access_token"])
    assert session["expires_in"] == 120
    assert claims["exp"] - claims["iat"] == 120


async def test_oversized_auth_body_is_413(localbase: LocalbaseThread) -> None:
    async with _private_auth(localbase, AuthConfig(max_body_bytes=1000)) as http:
        big = await http.post("/signup", json={"data": {"x": "y" * 2000}})
        small = await http.post("/signup", json={"data": {}})

    assert big.status_code == 413 and big.json()["code"] == "validation_failed"
    assert small.status_code == 200
