"""Channel and socket token checks, with the real Realtime's error texts."""

from __future__ import annotations

import jwt
import pytest

from localbase.keys import ProjectKeys
from localbase.realtime.tokens import TokenError, verify_api_key, verify_token

SECRET = "s" * 40
NOW = 1_800_000_000


def token(claims: dict, secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def test_valid_token_returns_its_claims() -> None:
    claims = {"role": "authenticated", "sub": "u", "exp": NOW + 60}

    assert verify_token(token(claims), SECRET, NOW) == claims


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("garbage", "MalformedJWT: The token provided is not a valid JWT"),
        (
            token({"role": "anon", "exp": NOW + 9}, "x" * 40),
            "JwtSignatureError: Failed to validate JWT signature",
        ),
        (token({"role": "anon"}), "InvalidJWTToken: Fields `role` and `exp` are required in JWT"),
        (token({"exp": NOW + 9}), "InvalidJWTToken: Fields `role` and `exp` are required in JWT"),
        (
            token({"role": "anon", "exp": NOW - 12}),
            "InvalidJWTToken: Token has expired 12 seconds ago",
        ),
    ],
)
def test_refused_tokens_carry_the_real_reason(value: str, reason: str) -> None:
    with pytest.raises(TokenError) as refused:
        verify_token(value, SECRET, NOW)

    assert refused.value.reason == reason


def test_opaque_keys_map_to_their_roles_and_unknown_ones_are_refused() -> None:
    keys = ProjectKeys.from_secret(SECRET, "sb_publishable_p", "sb_secret_s")

    assert verify_api_key("sb_publishable_p", keys)["role"] == "anon"
    assert verify_api_key("sb_secret_s", keys)["role"] == "service_role"
    assert verify_api_key(keys.anon_key, keys)["role"] == "anon"
    with pytest.raises(TokenError):
        verify_api_key("sb_secret_wrong", keys)
    with pytest.raises(TokenError, match="API key is missing"):
        verify_api_key(None, keys)
