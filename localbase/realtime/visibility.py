"""Catalogue facts and RLS checks for the hub, on the service's own small connection pool.

RLS is decided like upstream ``realtime.apply_rls`` (protocol doc §4.9): as the subscriber's
role with its claims in ``request.jwt.claims``, does ``select exists(... where pk = <WAL key>)``
find the row? To make that cheap, one statement checks *every* key of a table changed by a
batch of transactions for *every* distinct claims set at once: a session-local function
(``pg_temp``, created on each connection of this pool, so nothing is added to the project's
schemas) switches role and claims per claims set, runs the prepared probe and returns the
positions of the keys it could see. A failing claims set (no grant, a policy that raises)
sees nothing, in a subtransaction, without affecting the others.

Catalogue answers (RLS flag, primary key, column grants per role) are cached per table until
its Relation message changes or :data:`CACHE_SECONDS` pass, so steady traffic costs one query
per batch and idle sockets cost none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Final

import asyncpg

from localbase.database import parse_dsn
from localbase.realtime.hub import TableInfo
from localbase.realtime.pgoutput import Relation

log = logging.getLogger(__name__)

CACHE_SECONDS: Final = 5.0
POOL_SIZE: Final = 4  # the real service's subscription pool size
STATEMENT_TIMEOUT: Final = "10s"

_FUNCTION: Final = """
create or replace function pg_temp.localbase_visible(p_sql text, p_keys jsonb, p_claims jsonb[])
returns table(n int, visible int[]) language plpgsql as $$
begin
  for i in 1 .. coalesce(array_length(p_claims, 1), 0) loop
    n := i;
    begin
      perform set_config('role', p_claims[i] ->> 'role', true);
      perform set_config('request.jwt.claims', p_claims[i]::text, true);
      execute p_sql using p_keys into visible;
      perform set_config('role', 'none', true);
    exception when others then
      visible := '{}';  -- no grant, a policy that raises...: this claims set sees nothing
    end;
    return next;
  end loop;
end $$
"""
_TABLE_INFO: Final = """
select c.relrowsecurity,
       coalesce((select json_object_agg(a.attname, format_type(a.atttypid, a.atttypmod))
                 from pg_catalog.pg_index i
                 join pg_catalog.pg_attribute a on a.attrelid = i.indrelid
                      and a.attnum = any(i.indkey)
                 where i.indrelid = c.oid and i.indisprimary), '{}')::text
from pg_catalog.pg_class c where c.oid = $1
"""
_SELECTABLE: Final = """
select a.attname::text from pg_catalog.pg_attribute a
where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
  and has_column_privilege($2, a.attrelid, a.attnum, 'SELECT')
"""


class Visibility:
    """The hub's window on the database (see the module docstring)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.pool: asyncpg.Pool | None = None
        self.queries = 0  # statements sent, for the bench and the logs
        self._tables: dict[int, tuple[float, Relation, TableInfo]] = {}
        self._columns: dict[tuple[str, int], tuple[float, Relation, frozenset[str]]] = {}

    async def start(self) -> None:
        """Open the pool (asyncpg replaces connections the server dropped on next use)."""
        self.pool = await asyncpg.create_pool(
            min_size=1,
            max_size=POOL_SIZE,
            init=_create_function,
            server_settings={"statement_timeout": STATEMENT_TIMEOUT, "TimeZone": "UTC"},
            **parse_dsn(self.dsn),
        )

    async def stop(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except TimeoutError:
                pool.terminate()

    async def table_info(self, relation: Relation) -> TableInfo:
        """RLS flag and primary key (column -> SQL type) of a published table."""
        cached = self._tables.get(relation.id)
        if cached and cached[1] is relation and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[2]
        row = await self._fetchrow(_TABLE_INFO, relation.id)
        info = TableInfo(bool(row[0]), json.loads(row[1])) if row else TableInfo(False, {})
        self._tables[relation.id] = (time.monotonic(), relation, info)
        return info

    async def selectable_columns(self, role: str, relation: Relation) -> frozenset[str]:
        """Columns ``role`` may SELECT (``columns`` and ``record`` are cut to these)."""
        key = (role, relation.id)
        cached = self._columns.get(key)
        if cached and cached[1] is relation and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[2]
        rows = await self._fetch(_SELECTABLE, relation.id, role)
        names = frozenset(r[0] for r in rows)
        self._columns[key] = (time.monotonic(), relation, names)
        return names

    async def visible(
        self,
        relation: Relation,
        info: TableInfo,
        keys: list[dict[str, str]],
        claims: list[dict[str, Any]],
    ) -> list[set[int]]:
        """For each claims set, the positions in ``keys`` of the rows it may SELECT now."""
        if not keys or not claims:
            return [set() for _ in claims]
        columns = list(info.key_types)
        where = " and ".join(
            f"t.{_ident(c)} = (e.v ->> {i})::{info.key_types[c]}" for i, c in enumerate(columns)
        )
        table = f"{_ident(relation.schema)}.{_ident(relation.name)}"
        probe = (
            "select coalesce(array_agg(e.i::int), '{}') "
            "from jsonb_array_elements($1) with ordinality e(v, i) "
            f"where exists (select 1 from {table} t where {where})"
        )
        rows = [[key[c] for c in columns] for key in keys]
        payload = [dict(c, role=c.get("role", "anon")) for c in claims]
        result = await self._fetch(
            "select n, visible from pg_temp.localbase_visible($1, $2::jsonb, $3::jsonb[])",
            probe,
            json.dumps(rows),
            [json.dumps(c) for c in payload],
        )
        by_n = {r[0]: r[1] for r in result}
        return [{i - 1 for i in by_n.get(n, [])} for n in range(1, len(claims) + 1)]

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        assert self.pool is not None, "visibility used before start()"
        self.queries += 1
        async with self.pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        rows = await self._fetch(sql, *args)
        return rows[0] if rows else None


async def _create_function(conn: asyncpg.Connection) -> None:
    await conn.execute(_FUNCTION)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
