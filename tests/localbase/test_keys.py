"""ProjectKeys: one secret per data dir, CLI-style API keys, strict token checks."""

import os
import stat
import time
from pathlib import Path

import jwt
import pytest

from localbase.keys import InvalidToken, load_or_create_keys


def test_keys_are_created_once_per_data_dir_with_a_private_file(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path)

    second = load_or_create_keys(tmp_path)

    assert first == second
    mode = stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode)
    assert mode == 0o600


def test_legacy_keys_carry_role_iss_and_exp_like_the_cli(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)

    anon = keys.decode(keys.anon_key)
    service = keys.decode(keys.service_role_key)

    assert anon["role"] == "anon" and service["role"] == "service_role"
    assert anon["iss"] == "supabase-demo"
    assert anon["exp"] > time.time() + 10 * 365 * 24 * 3600


def test_opaque_keys_map_to_anon_and_service_role(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)

    assert keys.publishable_key.startswith("sb_publishable_")
    assert keys.secret_key.startswith("sb_secret_")
    assert keys.claims_for_api_key(keys.publishable_key)["role"] == "anon"
    assert keys.claims_for_api_key(keys.secret_key)["role"] == "service_role"


def test_unknown_opaque_key_is_rejected(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)

    with pytest.raises(InvalidToken):
        keys.claims_for_api_key("sb_secret_not-ours")


def test_alg_none_token_is_rejected(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)
    token = jwt.encode({"role": "service_role", "exp": 4102444800}, None, algorithm="none")

    with pytest.raises(InvalidToken):
        keys.decode(token)


def test_token_signed_with_another_secret_is_rejected(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)
    token = jwt.encode({"role": "service_role", "exp": 4102444800}, "x" * 40, algorithm="HS256")

    with pytest.raises(InvalidToken, match="signature"):
        keys.decode(token)


def test_expired_and_exp_less_tokens_are_rejected(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)
    expired = jwt.encode({"role": "anon", "exp": int(time.time()) - 120}, keys.jwt_secret)
    no_exp = jwt.encode({"role": "anon"}, keys.jwt_secret)

    with pytest.raises(InvalidToken, match="expired"):
        keys.decode(expired)
    with pytest.raises(InvalidToken, match="exp"):
        keys.decode(no_exp)


def test_minted_access_tokens_have_gotrue_claims(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)

    token, exp = keys.mint_access_token("u-1", "s-1", is_anonymous=True, lifetime=60)
    claims = keys.decode(token)

    assert claims["sub"] == "u-1" and claims["session_id"] == "s-1"
    assert claims["role"] == "authenticated" and claims["aud"] == "authenticated"
    assert claims["is_anonymous"] is True and claims["exp"] == exp
