"""Email and password rules of GoTrue's email provider, and bcrypt hashing off the loop."""

from __future__ import annotations

import asyncio
import re

import bcrypt

from localbase.errors import AuthApiError

# GoTrue's defaults: bcrypt cost 10, passwords of at most 72 bytes (bcrypt's own limit).
BCRYPT_COST = 10
MAX_PASSWORD_BYTES = 72
MAX_EMAIL_LENGTH = 255
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)


def normalize_email(value: object) -> str:
    """Return the lower-cased email, or raise 400 ``validation_failed``."""
    if not isinstance(value, str):
        raise AuthApiError(
            400, "validation_failed", "Unable to validate email address: invalid format"
        )
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise AuthApiError(
            400, "validation_failed", "Unable to validate email address: invalid format"
        )
    return email


def check_new_password(value: object, min_length: int) -> str:
    """Return the password if it may be set, else raise GoTrue's error for it.

    Too long (over 72 bytes) is 400 ``validation_failed``; too short is 422
    ``weak_password`` with ``{"weak_password": {"reasons": ["length"]}}`` in the body.
    """
    if not isinstance(value, str) or not value:
        raise AuthApiError(422, "weak_password", _too_short(min_length), extra=_weak(["length"]))
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise AuthApiError(
            400,
            "validation_failed",
            f"Password cannot be longer than {MAX_PASSWORD_BYTES} characters",
        )
    if len(value) < min_length:
        raise AuthApiError(422, "weak_password", _too_short(min_length), extra=_weak(["length"]))
    return value


async def hash_password(password: str) -> str:
    """bcrypt hash of ``password`` (computed in a worker thread)."""
    salt = bcrypt.gensalt(BCRYPT_COST)
    hashed = await asyncio.to_thread(bcrypt.hashpw, password.encode(), salt)
    return hashed.decode()


async def verify_password(password: str, hashed: str | None) -> bool:
    """True if ``password`` matches the stored hash; False for no hash or over-long input."""
    encoded = password.encode()
    if not hashed or len(encoded) > MAX_PASSWORD_BYTES:
        return False
    try:
        return await asyncio.to_thread(bcrypt.checkpw, encoded, hashed.encode())
    except ValueError:  # not a bcrypt hash
        return False


def _too_short(min_length: int) -> str:
    return f"Password should be at least {min_length} characters."


def _weak(reasons: list[str]) -> dict[str, object]:
    return {"weak_password": {"reasons": reasons}}
