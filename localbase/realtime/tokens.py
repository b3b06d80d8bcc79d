"""Token checks with the real Realtime's error codes and texts (protocol doc §4.1, §4.4, §4.10).

Realtime verifies a channel's token itself: it must be a JWT signed with the project secret,
carry ``role`` and ``exp``, and not be expired (no clock leeway).
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from localbase.keys import InvalidToken, ProjectKeys


class TokenError(Exception):
    """A token Realtime refuses; ``code`` and ``message`` are the real service's texts."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        """The join error reason, ``"<Code>: <message>"``."""
        return f"{self.code}: {self.message}"


def verify_token(token: str, secret: str, now: float | None = None) -> dict[str, Any]:
    """Return the claims of a channel token, checked the way Realtime checks them.

    Raises:
        TokenError: malformed, badly signed, missing ``role``/``exp`` or expired.
    """
    try:
        jwt.get_unverified_header(token)
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
        )
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as exc:
        raise TokenError("JwtSignatureError", "Failed to validate JWT signature") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("MalformedJWT", "The token provided is not a valid JWT") from exc
    if not isinstance(claims, dict) or "role" not in claims or "exp" not in claims:
        raise TokenError("InvalidJWTToken", "Fields `role` and `exp` are required in JWT")
    now = time.time() if now is None else now
    try:
        remaining = float(claims["exp"]) - now
    except (TypeError, ValueError) as exc:
        raise TokenError("InvalidJWTToken", "Fields `role` and `exp` are required in JWT") from exc
    if remaining <= 0:
        raise TokenError("InvalidJWTToken", f"Token has expired {int(-remaining)} seconds ago")
    return claims


def verify_api_key(key: str | None, keys: ProjectKeys, now: float | None = None) -> dict[str, Any]:
    """Claims of the socket's ``apikey``; opaque ``sb_`` keys map as the CLI gateway maps them.

    Raises:
        TokenError: with the connect-time texts (``API key is missing`` and the token texts).
    """
    if not key:
        raise TokenError("ApiKeyMissing", "API key is missing")
    if key.startswith("sb_"):
        try:
            return keys.claims_for_api_key(key)
        except InvalidToken as exc:
            raise TokenError("MalformedJWT", "The token provided is not a valid JWT") from exc
    return verify_token(key, keys.jwt_secret, now)
