"""GoTrue's user and identity JSON, read from ``auth.users`` and ``auth.identities``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg


async def load_user_json(conn: asyncpg.Connection, user: asyncpg.Record) -> dict[str, Any]:
    """The user object with its identities (one query for the identities)."""
    rows = await conn.fetch(
        "select * from auth.identities where user_id = $1 order by created_at", user["id"]
    )
    return user_json(user, [identity_json(row) for row in rows])


def user_json(
    user: asyncpg.Record, identities: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """GoTrue's user object; empty ``*_at`` fields are omitted, email/phone are ``""``."""
    body: dict[str, Any] = {
        "id": str(user["id"]),
        "aud": user["aud"] or "",
        "role": user["role"] or "",
        "email": user["email"] or "",
        "phone": user["phone"] or "",
        "app_metadata": json_object(user["raw_app_meta_data"]),
        "user_metadata": json_object(user["raw_user_meta_data"]),
        "identities": identities or [],
        "created_at": timestamp(user["created_at"]),
        "updated_at": timestamp(user["updated_at"]),
        "is_anonymous": user["is_anonymous"],
    }
    for name in ("email_confirmed_at", "phone_confirmed_at", "last_sign_in_at", "banned_until"):
        if user[name] is not None:
            body[name] = timestamp(user[name])
    confirmed = user["email_confirmed_at"] or user["phone_confirmed_at"]
    if confirmed is not None:
        body["confirmed_at"] = timestamp(confirmed)
    return body


def identity_json(row: asyncpg.Record) -> dict[str, Any]:
    body: dict[str, Any] = {
        "identity_id": str(row["id"]),
        "id": row["provider_id"],
        "user_id": str(row["user_id"]),
        "identity_data": json_object(row["identity_data"]),
        "provider": row["provider"],
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
        "email": row["email"] or "",
    }
    if row["last_sign_in_at"] is not None:
        body["last_sign_in_at"] = timestamp(row["last_sign_in_at"])
    return body


def json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
