"""Errors raised by localbase.

Lifecycle errors (raised to whoever starts the stack)::

    LocalbaseError              the stack could not start or stop cleanly
        PostgresError           the embedded cluster failed (message carries the log tail)
        MigrationError          a migration failed (message names the file)

HTTP errors (turned into response bodies by the gateway's exception handlers)::

    ApiError                    status_code + body
        PostgrestError          {"code", "details", "hint", "message"} (PostgREST shape)
        AuthApiError            {"code", "message"} (GoTrue shape, API version 2024-01-01)
"""

from __future__ import annotations

from typing import Any


class LocalbaseError(Exception):
    """The embedded stack could not start or stop; the message says why."""


class PostgresError(LocalbaseError):
    """The embedded PostgreSQL cluster could not be initialised, started or stopped."""


class MigrationError(LocalbaseError):
    """A bootstrap step or a migration file failed; nothing after it was applied."""


class ApiError(Exception):
    """Base class of errors that become an HTTP response."""

    status_code = 500

    def body(self) -> dict[str, Any]:
        raise NotImplementedError


class PostgrestError(ApiError):
    """An error in PostgREST's shape: ``{"code", "details", "hint", "message"}``."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        details: str | None = None,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "details": self.details,
            "hint": self.hint,
            "message": self.message,
        }


class AuthApiError(ApiError):
    """An error in GoTrue's shape: ``{"code", "message"}``."""

    def __init__(
        self, status_code: int, code: str, message: str, *, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.extra = extra or {}  # more top-level keys, e.g. {"weak_password": {...}}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}

    def legacy_body(self) -> dict[str, Any]:
        """The body for clients that send no ``X-Supabase-Api-Version`` (before 2024-01-01)."""
        return {
            "code": self.status_code,
            "error_code": self.code,
            "msg": self.message,
            **self.extra,
        }


# PostgREST's pgErrorStatus (src/library/PostgREST/Error.hs), keyed by SQLSTATE or by its
# two-character class; never by message text, which the server may translate.
_STATUS_BY_SQLSTATE: dict[str, int] = {
    "23505": 409,  # unique_violation
    "23503": 409,  # foreign_key_violation
    "42P01": 404,  # undefined_table
    "42883": 404,  # undefined_function
    "P0001": 400,  # raise_exception
    "25006": 405,  # read_only_sql_transaction
    "57P01": 503,  # admin_shutdown
    "57014": 500,  # query_canceled (statement timeout)
    "40001": 409,  # serialization_failure
    "40P01": 409,  # deadlock_detected
}
_STATUS_BY_CLASS: dict[str, int] = {
    "08": 503,  # connection exception
    "53": 503,  # insufficient resources
    "09": 500,
    "0L": 403,
    "0P": 403,
    "22": 400,
    "23": 400,
    "28": 403,
    "2D": 500,
    "38": 500,
    "39": 500,
    "3B": 500,
    "40": 500,
    "42": 400,
    "54": 500,
    "55": 500,
    "57": 500,
    "58": 500,
    "F0": 500,
    "HV": 500,
    "P0": 500,
    "XX": 500,
}


def status_for_sqlstate(sqlstate: str, *, role: str) -> int:
    """Return PostgREST's HTTP status for a database error raised while running as ``role``."""
    if sqlstate == "42501":  # insufficient_privilege, including RLS violations
        return 401 if role == "anon" else 403
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    if sqlstate in _STATUS_BY_SQLSTATE:
        return _STATUS_BY_SQLSTATE[sqlstate]
    return _STATUS_BY_CLASS.get(sqlstate[:2], 400)
