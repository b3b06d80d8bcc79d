"""The asyncpg pool, and transactions that run as a JWT's role with its claims.

Like PostgREST (protocol doc §3.7), each request runs in its own transaction that first sets
``role`` and ``request.jwt.claims`` with ``set_config(..., true)``: both are transaction-local,
so COMMIT or ROLLBACK ends them and a pooled connection never carries one user's identity
into the next user's transaction.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

# The roles a JWT may switch to. The pool connects as the superuser, so a token naming any
# other role (say "postgres") must never reach SET ROLE.
JWT_ROLES = frozenset({"anon", "authenticated", "service_role"})


class InvalidRole(Exception):
    """The JWT's role is not one that requests may run as."""

    def __init__(self, role: object) -> None:
        super().__init__(f"role {role!r} does not exist")
        self.role = role


def parse_dsn(dsn: str) -> dict[str, Any]:
    """Turn a libpq keyword DSN (``host=/tmp/x port=5432 ...``) into asyncpg keywords."""
    keywords: dict[str, str] = {}
    lexer = shlex.shlex(dsn, posix=True)
    lexer.whitespace_split = True
    lexer.escape = "\\"
    for item in lexer:
        name, _, value = item.partition("=")
        keywords[name] = value
    result: dict[str, Any] = {}
    if "host" in keywords:
        result["host"] = keywords["host"]
    if "port" in keywords:
        result["port"] = int(keywords["port"])
    if "user" in keywords:
        result["user"] = keywords["user"]
    if "dbname" in keywords:
        result["database"] = keywords["dbname"]
    if "password" in keywords:
        result["password"] = keywords["password"]
    return result


class Database:
    """An asyncpg pool plus the one way requests touch it: :meth:`as_claims`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._timeouts: dict[str, str] | None = None

    @classmethod
    async def connect(cls, dsn: str, min_size: int = 1, max_size: int = 10) -> Database:
        """Open a pool; ``dsn`` is a libpq keyword DSN or a ``postgresql://`` URI."""
        if "://" in dsn:
            pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        else:
            pool = await asyncpg.create_pool(min_size=min_size, max_size=max_size, **parse_dsn(dsn))
        return cls(pool)

    async def close(self) -> None:
        """Close the pool, giving busy connections a few seconds to finish."""
        try:
            await asyncio.wait_for(self.pool.close(), 5)
        except TimeoutError:
            self.pool.terminate()

    @asynccontextmanager
    async def as_claims(self, claims: dict[str, Any]) -> AsyncIterator[asyncpg.Connection]:
        """Run a transaction as ``claims["role"]`` with ``request.jwt.claims`` set.

        The body gets the connection; an exception rolls the transaction back, which also
        ends the role and the claims.

        Raises:
            InvalidRole: the role is not anon, authenticated or service_role.
        """
        role = claims.get("role", "anon")
        if role not in JWT_ROLES:
            raise InvalidRole(role)
        claims = {**claims, "role": role}
        async with self.pool.acquire() as conn, conn.transaction():
            timeout = (await self._role_timeouts(conn)).get(role)
            await conn.execute(
                "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true),"
                " set_config('statement_timeout',"
                " coalesce($3, current_setting('statement_timeout')), true)",
                role,
                json.dumps(claims),
                timeout,
            )
            yield conn

    async def _role_timeouts(self, conn: asyncpg.Connection) -> dict[str, str]:
        """Each JWT role's own ``statement_timeout`` (e.g. anon 3s, authenticated 8s).

        Switching role with set_config does not apply ``ALTER ROLE ... SET`` settings, so
        they are read once from the catalog and set per transaction, as PostgREST does.
        """
        if self._timeouts is None:
            rows = await conn.fetch(
                "select r.rolname, c.setting from pg_db_role_setting s"
                " join pg_roles r on r.oid = s.setrole, unnest(s.setconfig) as c(setting)"
                " where r.rolname = any($1::text[]) and s.setdatabase in"
                " (0, (select oid from pg_database where datname = current_database()))"
                " and c.setting like 'statement_timeout=%'",
                sorted(JWT_ROLES),
            )
            self._timeouts = {row["rolname"]: row["setting"].split("=", 1)[1] for row in rows}
        return self._timeouts

    @asynccontextmanager
    async def as_superuser(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction as the pool's own (superuser) role, for localbase's own tables."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn
