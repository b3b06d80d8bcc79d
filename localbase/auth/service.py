"""GoTrue endpoints: anonymous sign-up, refresh, user, logout (protocol doc §2)."""

from __future__ import annotations

import json
import logging
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localbase.database import Database
from localbase.errors import AuthApiError
from localbase.gateway import MissingApiKey, api_key_claims, bearer_token
from localbase.keys import DEFAULT_ACCESS_TOKEN_LIFETIME, InvalidToken, ProjectKeys

logger = logging.getLogger(__name__)

API_VERSION = "2024-01-01"
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class AuthConfig:
    """Settings of the auth service (the CLI's ``[auth]`` section, the parts we honour)."""

    access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME
    enable_anonymous_sign_ins: bool = True
    # GoTrue's default refresh_token_reuse_interval: the parent of the active token may be
    # presented again for this long (two tabs refreshing at once).
    refresh_token_reuse_interval: int = 10


def create_auth_app(database: Database, keys: ProjectKeys, config: AuthConfig) -> Starlette:
    """Return the ASGI app to mount at ``/auth/v1``."""
    service = AuthService(database, keys, config)
    routes = [
        Route("/health", service.health, methods=["GET"]),
        Route("/settings", service.settings, methods=["GET"]),
        Route("/signup", service.signup, methods=["POST"]),
        Route("/token", service.token, methods=["POST"]),
        Route("/user", service.get_user, methods=["GET"]),
        Route("/logout", service.logout, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            AuthApiError: auth_error_response,
            404: _not_found,
            405: _method_not_allowed,
            Exception: _unexpected_error,
        },
    )
    app.add_middleware(_ApiVersionMiddleware)
    return app


async def auth_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthApiError)
    headers = {"X-Supabase-Api-Version": API_VERSION, "x-sb-error-code": exc.code}
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    return await auth_error_response(request, AuthApiError(404, "not_found", "Not found"))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    error = AuthApiError(405, "method_not_allowed", "Method not allowed")
    return await auth_error_response(request, error)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("auth request failed: %s %s", request.method, request.url.path, exc_info=exc)
    error = AuthApiError(500, "unexpected_failure", "Unexpected failure, please check server logs")
    return await auth_error_response(request, error)


class _ApiVersionMiddleware:
    """Echo ``X-Supabase-Api-Version`` on every auth response, as GoTrue does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-supabase-api-version" for name, _ in headers):
                    headers.append((b"x-supabase-api-version", API_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)


class AuthService:
    def __init__(self, database: Database, keys: ProjectKeys, config: AuthConfig) -> None:
        self.database = database
        self.keys = keys
        self.config = config

    # -- endpoints --------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {"version": "localbase", "name": "GoTrue", "description": "localbase auth subset"}
        )

    async def settings(self, request: Request) -> Response:
        self._require_api_key(request)
        providers = {name: False for name in ("email", "phone", "google", "github")}
        providers["anonymous_users"] = self.config.enable_anonymous_sign_ins
        return JSONResponse(
            {
                "external": providers,
                "disable_signup": False,
                "mailer_autoconfirm": True,
                "phone_autoconfirm": False,
                "sms_provider": "",
                "saml_enabled": False,
            }
        )

    async def signup(self, request: Request) -> Response:
        """Anonymous sign-up: a body with neither email nor phone."""
        self._require_api_key(request)
        body = await _json_body(request)
        if body.get("email"):
            raise AuthApiError(400, "email_provider_disabled", "Email signups are disabled")
        if body.get("phone"):
            raise AuthApiError(400, "phone_provider_disabled", "Phone signups are disabled")
        if not self.config.enable_anonymous_sign_ins:
            raise AuthApiError(
                422, "anonymous_provider_disabled", "Anonymous sign-ins are disabled"
            )
        user_metadata = body.get("data") or {}
        if not isinstance(user_metadata, dict):
            raise AuthApiError(400, "validation_failed", "data must be a JSON object")

        user_id = uuid.uuid4()
        session_id = uuid.uuid4()
        refresh_token = _new_refresh_token()
        async with self.database.as_superuser() as conn:
            user = await conn.fetchrow(
                "insert into auth.users (instance_id, id, aud, role, email, phone,"
                " raw_app_meta_data, raw_user_meta_data, is_anonymous, last_sign_in_at)"
                " values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated',"
                " 'authenticated', '', '', '{}', $2::jsonb, true, now()) returning *",
                user_id,
                json.dumps(user_metadata),
            )
            await conn.execute(
                "insert into auth.sessions (id, user_id) values ($1, $2)", session_id, user_id
            )
            await conn.execute(
                "insert into auth.refresh_tokens (token, user_id, session_id) values ($1, $2, $3)",
                refresh_token,
                user_id,
                session_id,
            )
        logger.info("anonymous user %s signed up", user_id)
        return JSONResponse(self._session(request, user, session_id, refresh_token, "anonymous"))

    async def token(self, request: Request) -> Response:
        self._require_api_key(request)
        grant_type = request.query_params.get("grant_type")
        body = await _json_body(request)
        if grant_type == "refresh_token":
            return await self._refresh(request, body)
        if grant_type in {"password", "id_token", "pkce"}:
            raise AuthApiError(400, "invalid_credentials", "Invalid login credentials")
        raise AuthApiError(400, "invalid_credentials", "unsupported_grant_type")

    async def get_user(self, request: Request) -> Response:
        claims = self._require_user_claims(request)
        async with self.database.as_superuser() as conn:
            user, _ = await self._user_and_session(conn, claims)
        return JSONResponse(user_json(user))

    async def logout(self, request: Request) -> Response:
        claims = self._require_user_claims(request)
        scope = request.query_params.get("scope", "global")
        if scope not in {"global", "local", "others"}:
            raise AuthApiError(400, "validation_failed", f"Unsupported logout scope {scope!r}")
        async with self.database.as_superuser() as conn:
            user, session_id = await self._user_and_session(conn, claims)
            if scope == "global":
                await conn.execute("delete from auth.sessions where user_id = $1", user["id"])
            elif scope == "local":
                await conn.execute("delete from auth.sessions where id = $1", session_id)
            else:
                await conn.execute(
                    "delete from auth.sessions where user_id = $1 and id <> $2",
                    user["id"],
                    session_id,
                )
        return Response(status_code=204)

    # -- steps ------------------------------------------------------------------------------

    async def _refresh(self, request: Request, body: dict[str, Any]) -> Response:
        """Rotate a refresh token (GoTrue token_refresh.go, reuse interval included)."""
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise AuthApiError(400, "validation_failed", "Refresh token is not valid")
        async with self.database.as_superuser() as conn:
            row = await conn.fetchrow(
                "select *, updated_at > now() - make_interval(secs => $2) as within_reuse"
                " from auth.refresh_tokens where token = $1 for update",
                token,
                self.config.refresh_token_reuse_interval,
            )
            if row is None:
                raise AuthApiError(
                    400,
                    "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found",
                )
            session = await conn.fetchrow(
                "select * from auth.sessions where id = $1 for update", row["session_id"]
            )
            if session is None:
                raise AuthApiError(
                    400, "session_not_found", "Invalid Refresh Token: No Valid Session Found"
                )
            if row["revoked"]:
                active = await conn.fetchrow(
                    "select token from auth.refresh_tokens"
                    " where session_id = $1 and parent = $2 and not revoked",
                    row["session_id"],
                    token,
                )
                if active is None or not row["within_reuse"]:
                    raise AuthApiError(
                        400,
                        "refresh_token_already_used",
                        "Invalid Refresh Token: Already Used",
                    )
                new_token = active["token"]
            else:
                new_token = _new_refresh_token()
                await conn.execute(
                    "update auth.refresh_tokens set revoked = true, updated_at = now()"
                    " where id = $1",
                    row["id"],
                )
                await conn.execute(
                    "insert into auth.refresh_tokens (token, user_id, session_id, parent)"
                    " values ($1, $2, $3, $4)",
                    new_token,
                    row["user_id"],
                    row["session_id"],
                    token,
                )
            await conn.execute(
                "update auth.sessions set updated_at = now() where id = $1", session["id"]
            )
            user = await conn.fetchrow("select * from auth.users where id = $1", row["user_id"])
        if user is None:
            raise AuthApiError(400, "user_not_found", "User not found")
        method = "anonymous" if user["is_anonymous"] else "password"
        return JSONResponse(self._session(request, user, session["id"], new_token, method))

    def _session(
        self,
        request: Request,
        user: asyncpg.Record,
        session_id: uuid.UUID,
        refresh_token: str,
        method: str,
    ) -> dict[str, Any]:
        lifetime = self.config.access_token_lifetime
        issued_at = int(datetime.now(UTC).timestamp())
        access_token, expires_at = self.keys.mint_access_token(
            str(user["id"]),
            str(session_id),
            email=user["email"] or "",
            phone=user["phone"] or "",
            app_metadata=_json(user["raw_app_meta_data"]),
            user_metadata=_json(user["raw_user_meta_data"]),
            is_anonymous=user["is_anonymous"],
            amr=[{"method": method, "timestamp": issued_at}],
            issuer=f"{request.url.scheme}://{request.url.netloc}/auth/v1",
            lifetime=lifetime,
            now=issued_at,
        )
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": lifetime,
            "expires_at": expires_at,
            "refresh_token": refresh_token,
            "user": user_json(user),
        }

    def _require_api_key(self, request: Request) -> dict[str, Any]:
        try:
            return api_key_claims(request, self.keys)
        except MissingApiKey as exc:
            raise AuthApiError(401, "no_api_key", "No API key found in request") from exc
        except InvalidToken as exc:
            raise AuthApiError(401, "invalid_api_key", "Invalid API key") from exc

    def _require_user_claims(self, request: Request) -> dict[str, Any]:
        self._require_api_key(request)
        token = bearer_token(request)
        if token is None:
            raise AuthApiError(
                401, "no_authorization", "This endpoint requires a valid Bearer token"
            )
        try:
            claims = self.keys.decode(token)
        except InvalidToken as exc:
            raise AuthApiError(
                403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc}"
            ) from exc
        if not claims.get("sub"):
            raise AuthApiError(403, "bad_jwt", "invalid claim: missing sub claim")
        return claims

    async def _user_and_session(
        self, conn: asyncpg.Connection, claims: dict[str, Any]
    ) -> tuple[asyncpg.Record, uuid.UUID]:
        try:
            user_id = uuid.UUID(str(claims["sub"]))
            session_id = uuid.UUID(str(claims.get("session_id")))
        except ValueError as exc:
            raise AuthApiError(403, "bad_jwt", "invalid claim: sub or session_id") from exc
        user = await conn.fetchrow("select * from auth.users where id = $1", user_id)
        if user is None:
            raise AuthApiError(403, "user_not_found", "User from sub claim in JWT does not exist")
        exists = await conn.fetchval(
            "select exists (select from auth.sessions where id = $1 and user_id = $2)",
            session_id,
            user_id,
        )
        if not exists:
            raise AuthApiError(
                403, "session_not_found", "Session from session_id claim in JWT does not exist"
            )
        return user, session_id


def user_json(user: asyncpg.Record) -> dict[str, Any]:
    """GoTrue's user object; empty ``*_at`` fields are omitted, email/phone are ``""``."""
    body: dict[str, Any] = {
        "id": str(user["id"]),
        "aud": user["aud"] or "",
        "role": user["role"] or "",
        "email": user["email"] or "",
        "phone": user["phone"] or "",
        "app_metadata": _json(user["raw_app_meta_data"]),
        "user_metadata": _json(user["raw_user_meta_data"]),
        "identities": [],
        "created_at": _timestamp(user["created_at"]),
        "updated_at": _timestamp(user["updated_at"]),
        "is_anonymous": user["is_anonymous"],
    }
    for name in ("email_confirmed_at", "phone_confirmed_at", "last_sign_in_at"):
        if user[name] is not None:
            body[name] = _timestamp(user[name])
    return body


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise AuthApiError(400, "bad_json", f"Could not parse request body as JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise AuthApiError(400, "bad_json", "Request body must be a JSON object")
    return body


def _new_refresh_token() -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(32))


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
