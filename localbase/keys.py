"""Project keys, made the way the Supabase CLI makes them.

One JWT secret per data dir (``<data_dir>/keys.json``, mode 0600). From it come the legacy
API keys (long-lived HS256 JWTs with ``role`` anon / service_role, ``iss`` "supabase-demo", no
``iat``, like the CLI's demo keys) and the opaque ``sb_publishable_...`` / ``sb_secret_...``
keys, which the CLI's gateway swaps for the anon / service_role JWT before a request reaches
PostgREST, GoTrue or Realtime. We do the same swap in :meth:`ProjectKeys.claims_for_api_key`.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

KEYS_FILE = "keys.json"
ISSUER = "supabase-demo"
# Far in the future like the CLI's demo keys (which end in 2032); 2100-01-01 here.
API_KEY_EXPIRY = 4102444800
DEFAULT_ACCESS_TOKEN_LIFETIME = 3600
# PostgREST allows 30 s of clock skew when checking exp/nbf/iat.
CLOCK_SKEW_SECONDS = 30


class InvalidToken(Exception):
    """A key or token that does not verify; the message says why, in lower case."""


@dataclass(frozen=True)
class ProjectKeys:
    """The keys of one localbase project (one data dir)."""

    jwt_secret: str
    anon_key: str
    service_role_key: str
    publishable_key: str
    secret_key: str

    @classmethod
    def from_secret(cls, jwt_secret: str, publishable_key: str, secret_key: str) -> ProjectKeys:
        return cls(
            jwt_secret=jwt_secret,
            anon_key=_api_key_jwt("anon", jwt_secret),
            service_role_key=_api_key_jwt("service_role", jwt_secret),
            publishable_key=publishable_key,
            secret_key=secret_key,
        )

    def claims_for_api_key(self, key: str) -> dict[str, Any]:
        """Return the claims an API key stands for.

        Legacy keys are verified JWTs; ``sb_publishable_`` / ``sb_secret_`` keys map to the
        anon / service_role key's claims, as the CLI gateway maps them.

        Raises:
            InvalidToken: unknown opaque key, or a JWT that does not verify.
        """
        if key == self.publishable_key:
            return self.decode(self.anon_key)
        if key == self.secret_key:
            return self.decode(self.service_role_key)
        if key.startswith("sb_"):
            raise InvalidToken("invalid api key")
        return self.decode(key)

    def decode(self, token: str) -> dict[str, Any]:
        """Verify an HS256 token signed with the project secret and return its claims.

        ``exp`` is required (API keys carry one too); ``aud`` is not checked, as PostgREST
        does without a configured audience.

        Raises:
            InvalidToken: wrong algorithm (including ``none``), bad signature, missing or
                past ``exp``, or not a JWT at all.
        """
        try:
            claims = jwt.decode(
                token,
                self.jwt_secret,
                algorithms=["HS256"],
                options={"require": ["exp"], "verify_aud": False},
                leeway=CLOCK_SKEW_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("jwt expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("jwt signature verification failed") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise InvalidToken("jwt algorithm not allowed, only HS256 is accepted") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"jwt is missing the {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid jwt: {str(exc).lower()}") from exc
        if not isinstance(claims, dict):
            raise InvalidToken("invalid jwt: payload is not an object")
        return claims

    def mint_access_token(
        self,
        user_id: str,
        session_id: str,
        *,
        email: str = "",
        phone: str = "",
        app_metadata: dict[str, Any] | None = None,
        user_metadata: dict[str, Any] | None = None,
        is_anonymous: bool = False,
        amr: list[dict[str, Any]] | None = None,
        issuer: str | None = None,
        lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME,
        now: int | None = None,
    ) -> tuple[str, int]:
        """Mint a user access token with GoTrue's claim set; return ``(token, exp)``."""
        iat = int(time.time()) if now is None else now
        exp = iat + lifetime
        claims: dict[str, Any] = {
            "iss": issuer or ISSUER,
            "sub": user_id,
            "aud": "authenticated",
            "exp": exp,
            "iat": iat,
            "email": email,
            "phone": phone,
            "app_metadata": app_metadata or {},
            "user_metadata": user_metadata or {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": amr or [],
            "session_id": session_id,
            "is_anonymous": is_anonymous,
        }
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256"), exp


def load_or_create_keys(data_dir: Path) -> ProjectKeys:
    """Return the data dir's keys, creating ``keys.json`` (mode 0600) on first use."""
    path = Path(data_dir) / KEYS_FILE
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        stored = {
            "jwt_secret": secrets.token_urlsafe(48),
            "publishable_key": f"sb_publishable_{secrets.token_urlsafe(24)}",
            "secret_key": f"sb_secret_{secrets.token_urlsafe(24)}",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, json.dumps(stored, indent=2) + "\n")
    return ProjectKeys.from_secret(
        stored["jwt_secret"], stored["publishable_key"], stored["secret_key"]
    )


def _api_key_jwt(role: str, secret: str) -> str:
    claims = {"iss": ISSUER, "role": role, "exp": API_KEY_EXPIRY}
    return jwt.encode(claims, secret, algorithm="HS256")


def _write_private(path: Path, text: str) -> None:
    """Create the file readable by its owner only, never world-readable, not even briefly."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(tmp, path)
