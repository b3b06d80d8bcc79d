"""GoTrue endpoints: sign-up (anonymous, email), token grants, user, logout (protocol doc §2)."""

from __future__ import annotations

import json
import logging
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localbase.auth.passwords import (
    check_new_password,
    hash_password,
    normalize_email,
    verify_password,
)
from localbase.auth.ratelimit import RateLimiter
from localbase.auth.users import json_object, load_user_json
from localbase.database import Database
from localbase.errors import AuthApiError
from localbase.gateway import MissingApiKey, api_key_claims, bearer_token
from localbase.keys import DEFAULT_ACCESS_TOKEN_LIFETIME, InvalidToken, ProjectKeys
from localbase.rest.body import BodyTooLarge, read_body

logger = logging.getLogger(__name__)

API_VERSION = "2024-01-01"
_API_VERSION_DATE = date(2024, 1, 1)
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
_INSTANCE_ID = "00000000-0000-0000-0000-000000000000"
_PKCE_CHARS = frozenset(string.ascii_letters + string.digits + "-._~")


ADDRESS_LIMIT_FACTOR = 10  # sign-in attempts per address: this many times the per-login limit


@dataclass(frozen=True)
class AuthConfig:
    """Settings of the auth service (the CLI's ``[auth]`` section, the parts we honour)."""

    access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME
    enable_anonymous_sign_ins: bool = True
    # GoTrue's default refresh_token_reuse_interval: the parent of the active token may be
    # presented again for this long (two tabs refreshing at once).
    refresh_token_reuse_interval: int = 10
    enable_signup: bool = True
    enable_email_signup: bool = True
    minimum_password_length: int = 6
    # Password sign-ins and email sign-ups per client IP and email within the window
    # (the CLI's sign_in_sign_ups default is 30 per 5 minutes).
    sign_in_rate_limit: int = 30
    sign_in_rate_window: float = 300.0
    max_body_bytes: int = 1024 * 1024


def create_auth_app(database: Database, keys: ProjectKeys, config: AuthConfig) -> Starlette:
    """Return the ASGI app to mount at ``/auth/v1``."""
    service = AuthService(database, keys, config)
    routes = [
        Route("/health", service.health, methods=["GET"]),
        Route("/settings", service.settings, methods=["GET"]),
        Route("/signup", service.signup, methods=["POST"]),
        Route("/token", service.token, methods=["POST"]),
        Route("/user", service.get_user, methods=["GET"]),
        Route("/user", service.update_user, methods=["PUT"]),
        Route("/logout", service.logout, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            AuthApiError: auth_error_response,
            404: _not_found,
            405: _method_not_allowed,
            RecursionError: _unreadable_input,
            asyncpg.exceptions.CharacterNotInRepertoireError: _unreadable_input,
            Exception: _unexpected_error,
        },
    )
    app.add_middleware(_ApiVersionMiddleware)
    return app


async def auth_error_response(request: Request, exc: Exception) -> Response:
    """GoTrue's error body: the 2024-01-01 shape if the client asked for it, else legacy."""
    assert isinstance(exc, AuthApiError)
    headers = {"X-Supabase-Api-Version": API_VERSION, "x-sb-error-code": exc.code}
    body = exc.body() if _wants_versioned_errors(request) else exc.legacy_body()
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _wants_versioned_errors(request: Request) -> bool:
    try:
        requested = date.fromisoformat(request.headers.get("x-supabase-api-version", ""))
    except ValueError:
        return False
    return requested >= _API_VERSION_DATE


async def _not_found(request: Request, exc: Exception) -> Response:
    return await auth_error_response(request, AuthApiError(404, "not_found", "Not found"))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    error = AuthApiError(405, "method_not_allowed", "Method not allowed")
    return await auth_error_response(request, error)


async def _unreadable_input(request: Request, exc: Exception) -> Response:
    error = AuthApiError(400, "validation_failed", "Request contains unreadable or nested input")
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
        self.sign_in_limiter = RateLimiter(config.sign_in_rate_limit, config.sign_in_rate_window)
        # Per address as well: without it, one address could try other logins until the
        # per-login counters it is limited by are evicted from the bounded table.
        self.address_limiter = RateLimiter(
            config.sign_in_rate_limit * ADDRESS_LIMIT_FACTOR, config.sign_in_rate_window
        )

    # -- endpoints --------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {"version": "localbase", "name": "GoTrue", "description": "localbase auth subset"}
        )

    async def settings(self, request: Request) -> Response:
        self._require_api_key(request)
        providers = {name: False for name in ("email", "phone", "google", "github")}
        providers["email"] = self.config.enable_email_signup
        providers["anonymous_users"] = self.config.enable_anonymous_sign_ins
        return JSONResponse(
            {
                "external": providers,
                "disable_signup": not self.config.enable_signup,
                "mailer_autoconfirm": True,
                "phone_autoconfirm": False,
                "sms_provider": "",
                "saml_enabled": False,
            }
        )

    async def signup(self, request: Request) -> Response:
        """Email sign-up (auto-confirmed, session returned) or anonymous sign-up."""
        self._require_api_key(request)
        body = await self._json_body(request)
        if body.get("phone"):
            raise AuthApiError(400, "phone_provider_disabled", "Phone signups are disabled")
        user_metadata = body.get("data") or {}
        if not isinstance(user_metadata, dict):
            raise AuthApiError(400, "validation_failed", "data must be a JSON object")
        if body.get("email") is not None:
            return await self._signup_email(request, body, user_metadata)
        if not self.config.enable_anonymous_sign_ins:
            raise AuthApiError(
                422, "anonymous_provider_disabled", "Anonymous sign-ins are disabled"
            )

        user_id = uuid.uuid4()
        async with self.database.as_superuser() as conn:
            user = await conn.fetchrow(
                "insert into auth.users (instance_id, id, aud, role, email, phone,"
                " raw_app_meta_data, raw_user_meta_data, is_anonymous, last_sign_in_at)"
                " values ($1, $2, 'authenticated', 'authenticated', '', '', '{}', $3::jsonb,"
                " true, now()) returning *",
                uuid.UUID(_INSTANCE_ID),
                user_id,
                json.dumps(user_metadata),
            )
            session_id, refresh_token = await _new_session(conn, user_id)
            user_body = await load_user_json(conn, user)
        logger.info("anonymous user %s signed up", user_id)
        session = self._session(request, user, user_body, session_id, refresh_token, "anonymous")
        return JSONResponse(session)

    async def token(self, request: Request) -> Response:
        self._require_api_key(request)
        grant_type = request.query_params.get("grant_type")
        body = await self._json_body(request)
        if grant_type == "refresh_token":
            return await self._refresh(request, body)
        if grant_type == "password":
            return await self._password_grant(request, body)
        if grant_type in {"id_token", "pkce"}:
            raise AuthApiError(400, "invalid_credentials", "Invalid login credentials")
        raise AuthApiError(400, "invalid_credentials", "unsupported_grant_type")

    async def get_user(self, request: Request) -> Response:
        claims = self._require_user_claims(request)
        async with self.database.as_superuser() as conn:
            user, _ = await self._user_and_session(conn, claims)
            return JSONResponse(await load_user_json(conn, user))

    async def update_user(self, request: Request) -> Response:
        """``PUT /user``: user metadata (merged; null deletes a key), email, password."""
        claims = self._require_user_claims(request)
        body = await self._json_body(request)
        data = body.get("data")
        if data is not None and not isinstance(data, dict):
            raise AuthApiError(400, "validation_failed", "data must be a JSON object")
        if body.get("phone"):
            raise AuthApiError(400, "phone_provider_disabled", "Phone logins are disabled")
        email = normalize_email(body["email"]) if body.get("email") else None
        password = body.get("password")
        if password is not None:
            password = check_new_password(password, self.config.minimum_password_length)

        async with self.database.as_superuser() as conn:
            user, _ = await self._user_and_session(conn, claims, lock=True)
            if email is not None and email != user["email"]:
                user = await _change_email(conn, user, email)
            if password is not None:
                user = await self._change_password(conn, user, password)
            if data is not None:
                metadata = {**json_object(user["raw_user_meta_data"]), **data}
                metadata = {key: value for key, value in metadata.items() if value is not None}
                user = await conn.fetchrow(
                    "update auth.users set raw_user_meta_data = $2::jsonb, updated_at = now()"
                    " where id = $1 returning *",
                    user["id"],
                    json.dumps(metadata),
                )
            return JSONResponse(await load_user_json(conn, user))

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

    async def _signup_email(
        self, request: Request, body: dict[str, Any], data: dict[str, Any]
    ) -> Response:
        if not self.config.enable_signup:
            raise AuthApiError(422, "signup_disabled", "Signups not allowed for this instance")
        if not self.config.enable_email_signup:
            raise AuthApiError(400, "email_provider_disabled", "Email signups are disabled")
        email = normalize_email(body.get("email"))
        password = check_new_password(body.get("password"), self.config.minimum_password_length)
        _check_pkce(body)
        self._check_rate(request, email)
        async with self.database.as_superuser() as conn:
            if await conn.fetchval(
                "select exists (select from auth.users where email = $1)", email
            ):
                raise _user_exists()
        hashed = await hash_password(password)

        user_id = uuid.uuid4()
        identity = _email_identity_data(user_id, email)
        metadata = {**data, **identity, "email_verified": True}
        app_metadata = {"provider": "email", "providers": ["email"]}
        async with self.database.as_superuser() as conn:
            user = await conn.fetchrow(
                "insert into auth.users (instance_id, id, aud, role, email, encrypted_password,"
                " email_confirmed_at, phone, raw_app_meta_data, raw_user_meta_data,"
                " is_anonymous, last_sign_in_at)"
                " values ($1, $2, 'authenticated', 'authenticated', $3, $4, now(), '',"
                " $5::jsonb, $6::jsonb, false, now())"
                " on conflict do nothing returning *",
                uuid.UUID(_INSTANCE_ID),
                user_id,
                email,
                hashed,
                json.dumps(app_metadata),
                json.dumps(metadata),
            )
            if user is None:  # registered concurrently
                raise _user_exists()
            await _upsert_email_identity(conn, user_id, email)
            session_id, refresh_token = await _new_session(conn, user_id)
            user_body = await load_user_json(conn, user)
        logger.info("email user %s signed up", user_id)
        session = self._session(request, user, user_body, session_id, refresh_token, "password")
        return JSONResponse(session)

    async def _password_grant(self, request: Request, body: dict[str, Any]) -> Response:
        """``grant_type=password``: email + password sign-in (phone users have no password)."""
        email, phone, password = body.get("email"), body.get("phone"), body.get("password")
        if not email and not phone:
            raise AuthApiError(400, "validation_failed", "missing email or phone")
        login = str(email or phone).strip().lower()
        self._check_rate(request, login)
        if not isinstance(password, str) or not email:
            raise _invalid_credentials()
        async with self.database.as_superuser() as conn:
            user = await conn.fetchrow(
                "select * from auth.users where email = $1 and not is_sso_user", login
            )
        if not await verify_password(password, user["encrypted_password"] if user else None):
            raise _invalid_credentials()
        assert user is not None
        if user["email_confirmed_at"] is None:
            raise AuthApiError(400, "email_not_confirmed", "Email not confirmed")
        if user["banned_until"] is not None and user["banned_until"] > datetime.now(UTC):
            raise AuthApiError(400, "user_banned", "User is banned")

        async with self.database.as_superuser() as conn:
            user = await conn.fetchrow(
                "update auth.users set last_sign_in_at = now() where id = $1 returning *",
                user["id"],
            )
            await conn.execute(
                "update auth.identities set last_sign_in_at = now()"
                " where user_id = $1 and provider = 'email'",
                user["id"],
            )
            session_id, refresh_token = await _new_session(conn, user["id"])
            user_body = await load_user_json(conn, user)
        session = self._session(request, user, user_body, session_id, refresh_token, "password")
        if len(password) < self.config.minimum_password_length:
            session["weak_password"] = {"reasons": ["length"]}
        return JSONResponse(session)

    async def _change_password(
        self, conn: asyncpg.Connection, user: asyncpg.Record, password: str
    ) -> asyncpg.Record:
        if not user["email"]:
            raise AuthApiError(
                422,
                "validation_failed",
                "Updating password of an anonymous user without an email or phone is not allowed",
            )
        if await verify_password(password, user["encrypted_password"]):
            raise AuthApiError(
                422, "same_password", "New password should be different from the old password."
            )
        return await conn.fetchrow(
            "update auth.users set encrypted_password = $2, updated_at = now()"
            " where id = $1 returning *",
            user["id"],
            await hash_password(password),
        )

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
            user_body = await load_user_json(conn, user)
        method = "anonymous" if user["is_anonymous"] else "password"
        return JSONResponse(
            self._session(request, user, user_body, session["id"], new_token, method)
        )

    def _session(
        self,
        request: Request,
        user: asyncpg.Record,
        user_body: dict[str, Any],
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
            app_metadata=json_object(user["raw_app_meta_data"]),
            user_metadata=json_object(user["raw_user_meta_data"]),
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
            "user": user_body,
        }

    def _check_rate(self, request: Request, login: str) -> None:
        client = request.client.host if request.client else ""
        if not (self.address_limiter.hit(client) and self.sign_in_limiter.hit((client, login))):
            logger.warning("sign-in rate limit reached for %s from %s", login, client)
            raise AuthApiError(429, "over_request_rate_limit", "Request rate limit reached")

    async def _json_body(self, request: Request) -> dict[str, Any]:
        try:
            raw = await read_body(request, self.config.max_body_bytes)
        except BodyTooLarge as exc:
            raise AuthApiError(413, "validation_failed", str(exc)) from exc
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise AuthApiError(
                400, "bad_json", f"Could not parse request body as JSON: {exc}"
            ) from exc
        if not isinstance(body, dict):
            raise AuthApiError(400, "bad_json", "Request body must be a JSON object")
        return body

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
        self, conn: asyncpg.Connection, claims: dict[str, Any], *, lock: bool = False
    ) -> tuple[asyncpg.Record, uuid.UUID]:
        try:
            user_id = uuid.UUID(str(claims["sub"]))
            session_id = uuid.UUID(str(claims.get("session_id")))
        except ValueError as exc:
            raise AuthApiError(403, "bad_jwt", "invalid claim: sub or session_id") from exc
        suffix = " for update" if lock else ""
        user = await conn.fetchrow(f"select * from auth.users where id = $1{suffix}", user_id)
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


async def _new_session(conn: asyncpg.Connection, user_id: uuid.UUID) -> tuple[uuid.UUID, str]:
    session_id = uuid.uuid4()
    refresh_token = _new_refresh_token()
    await conn.execute(
        "insert into auth.sessions (id, user_id) values ($1, $2)", session_id, user_id
    )
    await conn.execute(
        "insert into auth.refresh_tokens (token, user_id, session_id) values ($1, $2, $3)",
        refresh_token,
        user_id,
        session_id,
    )
    return session_id, refresh_token


async def _change_email(
    conn: asyncpg.Connection, user: asyncpg.Record, email: str
) -> asyncpg.Record:
    """Set a new email at once (mailer auto-confirm); an anonymous user becomes permanent."""
    taken = await conn.fetchval(
        "select exists (select from auth.users where email = $1 and id <> $2)", email, user["id"]
    )
    if taken:
        raise AuthApiError(
            422, "email_exists", "A user with this email address has already been registered"
        )
    app_metadata = json_object(user["raw_app_meta_data"])
    providers = list(app_metadata.get("providers") or [])
    if "email" not in providers:
        providers.append("email")
    app_metadata = {"provider": app_metadata.get("provider", "email"), **app_metadata}
    app_metadata["providers"] = providers
    metadata = {**json_object(user["raw_user_meta_data"]), "email": email, "email_verified": True}
    updated = await conn.fetchrow(
        "update auth.users set email = $2, email_confirmed_at = now(), is_anonymous = false,"
        " raw_app_meta_data = $3::jsonb, raw_user_meta_data = $4::jsonb, updated_at = now()"
        " where id = $1 returning *",
        user["id"],
        email,
        json.dumps(app_metadata),
        json.dumps(metadata),
    )
    await _upsert_email_identity(conn, user["id"], email)
    return updated


async def _upsert_email_identity(conn: asyncpg.Connection, user_id: uuid.UUID, email: str) -> None:
    await conn.execute(
        "insert into auth.identities (provider_id, user_id, identity_data, provider,"
        " last_sign_in_at) values ($1, $2, $3::jsonb, 'email', now())"
        " on conflict (provider_id, provider) do update"
        " set identity_data = excluded.identity_data, updated_at = now()",
        str(user_id),
        user_id,
        json.dumps(_email_identity_data(user_id, email)),
    )


def _email_identity_data(user_id: uuid.UUID, email: str) -> dict[str, Any]:
    return {"sub": str(user_id), "email": email, "email_verified": False, "phone_verified": False}


def _check_pkce(body: dict[str, Any]) -> None:
    """Both PKCE fields or neither, and a well-formed challenge (ignored when auto-confirmed)."""
    challenge, method = body.get("code_challenge"), body.get("code_challenge_method")
    if not challenge and not method:
        return
    if not challenge or not method:
        raise AuthApiError(
            400,
            "validation_failed",
            "PKCE flow requires code_challenge_method and code_challenge",
        )
    if (
        not isinstance(challenge, str)
        or not 43 <= len(challenge) <= 128
        or not set(challenge) <= _PKCE_CHARS
        or str(method).lower() not in {"s256", "plain"}
    ):
        raise AuthApiError(400, "validation_failed", "Invalid code_challenge or its method")


def _user_exists() -> AuthApiError:
    return AuthApiError(422, "user_already_exists", "User already registered")


def _invalid_credentials() -> AuthApiError:
    return AuthApiError(400, "invalid_credentials", "Invalid login credentials")


def _new_refresh_token() -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(32))
