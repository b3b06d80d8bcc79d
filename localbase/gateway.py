"""What the CLI's API gateway (Kong) does in front of every service: API key checks.

Kong's key-auth accepts the key from the ``apikey`` header (or query parameter) and swaps an
opaque ``sb_`` key for the matching legacy JWT before the request reaches the service. Here
the services ask :func:`api_key_claims` for the claims the key stands for.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from localbase.keys import ProjectKeys


class MissingApiKey(Exception):
    """The request carries no API key."""


def api_key(request: HTTPConnection) -> str | None:
    """The request's API key: ``apikey`` header, else ``apikey`` query parameter."""
    return request.headers.get("apikey") or request.query_params.get("apikey") or None


def api_key_claims(request: HTTPConnection, keys: ProjectKeys) -> dict[str, Any]:
    """Return the claims of the request's API key.

    Raises:
        MissingApiKey: no key at all.
        InvalidToken: the key is not one of this project's keys.
    """
    key = api_key(request)
    if key is None:
        raise MissingApiKey("no api key found in request")
    return keys.claims_for_api_key(key)


def bearer_token(request: HTTPConnection) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
