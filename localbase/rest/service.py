"""PostgREST endpoints: tables (GET/HEAD/POST/PATCH/DELETE) and ``/rpc/<fn>``.

Every request runs in one transaction as the JWT's role with ``request.jwt.claims`` set
(:meth:`Database.as_claims`), so the table's real RLS policies decide what is visible.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localbase.database import Database, InvalidRole
from localbase.errors import PostgrestError, status_for_sqlstate
from localbase.gateway import MissingApiKey, api_key_claims, bearer_token
from localbase.keys import InvalidToken, ProjectKeys
from localbase.rest import sql
from localbase.rest.body import DEFAULT_MAX_BODY_BYTES, BodyTooLarge, read_body
from localbase.rest.query import EmbedItem, Preferences
from localbase.rest.request import TableQuery, preferences, query_errors
from localbase.rest.responses import (
    Representation,
    Result,
    json_response,
    negotiate,
    not_singular,
    read_status_and_range,
)
from localbase.rest.rpc import call_function

logger = logging.getLogger(__name__)

EXPOSED_SCHEMAS = ("public",)


def create_rest_app(
    database: Database, keys: ProjectKeys, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> Starlette:
    """Return the ASGI app to mount at ``/rest/v1``."""
    service = RestService(database, keys, max_body_bytes)
    methods = ["GET", "HEAD", "POST", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/", service.root, methods=["GET", "HEAD"]),
            Route("/rpc/{function}", service.rpc, methods=["GET", "HEAD", "POST"]),
            Route("/{table}", service.table, methods=methods),
        ],
        exception_handlers={
            PostgrestError: postgrest_error_response,
            404: _not_found,
            405: _method_not_allowed,
            RecursionError: _nested_too_deeply,
            Exception: _unexpected_error,
        },
    )


async def postgrest_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PostgrestError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    error = PostgrestError(
        404, "PGRST125", f"Invalid path specified in request URL: {request.url.path}"
    )
    return await postgrest_error_response(request, error)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    error = PostgrestError(405, "PGRST117", f"Unsupported HTTP method: {request.method}")
    return await postgrest_error_response(request, error)


async def _nested_too_deeply(request: Request, exc: Exception) -> Response:
    error = PostgrestError(400, "PGRST100", "the request nests filters or JSON too deeply")
    return await postgrest_error_response(request, error)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("rest request failed: %s %s", request.method, request.url.path, exc_info=exc)
    error = PostgrestError(500, "PGRST000", "internal error in localbase, see the server log")
    return await postgrest_error_response(request, error)


class RestService:
    def __init__(self, database: Database, keys: ProjectKeys, max_body_bytes: int) -> None:
        self.database = database
        self.keys = keys
        self.max_body_bytes = max_body_bytes

    async def root(self, request: Request) -> Response:
        self._claims(request)
        return JSONResponse({"swagger": "2.0", "info": {"title": "localbase rest"}, "paths": {}})

    # -- tables -----------------------------------------------------------------------------

    async def table(self, request: Request) -> Response:
        claims = self._claims(request)
        schema = self._schema(request)
        name = request.path_params["table"]
        representation = negotiate(request)
        prefs = preferences(request)
        with query_errors():
            query = TableQuery.from_request(request)
        body = await self._json_body(request) if request.method in {"POST", "PATCH"} else None

        async with self._transaction(claims) as conn:
            await _apply_timezone(conn, prefs)
            table = await sql.load_table(conn, schema, name)
            embeds = await sql.resolve_embeds(conn, table, query.select)
            total = None
            if request.method in {"GET", "HEAD"}:
                result, total = await _read(conn, table, query, prefs, embeds, representation)
            elif request.method == "POST":
                result = await _insert(conn, table, query, prefs, body, embeds, representation)
            elif request.method == "PATCH":
                result = await _update(conn, table, query, body, embeds, representation)
            else:
                result = await _delete(conn, table, query, embeds, representation)
            # Raised inside the transaction: a refused mutation is rolled back.
            if representation.singular and result.count != 1:
                raise not_singular(result.count)
            if request.method not in {"GET", "HEAD"}:
                _check_max_affected(prefs, result.count)

        return _table_response(request, table, result, total, query, prefs, representation)

    # -- rpc --------------------------------------------------------------------------------

    async def rpc(self, request: Request) -> Response:
        claims = self._claims(request)
        schema = self._schema(request)
        representation = negotiate(request)
        prefs = preferences(request)
        if request.method == "POST":
            args = await self._json_body(request)
            if not isinstance(args, dict):
                raise PostgrestError(400, "PGRST102", "rpc arguments must be a JSON object")
        else:
            args = None
        async with self._transaction(claims) as conn:
            await _apply_timezone(conn, prefs)
            return await call_function(
                conn, request, schema, request.path_params["function"], args, prefs, representation
            )

    # -- request plumbing -------------------------------------------------------------------

    def _claims(self, request: Request) -> dict[str, Any]:
        """The claims the request runs with: the bearer JWT's, else the API key's."""
        try:
            key_claims = api_key_claims(request, self.keys)
        except MissingApiKey as exc:
            raise PostgrestError(
                401, "PGRST302", "No API key found in request",
                hint="pass your project's anon or publishable key in the apikey header",
            ) from exc  # fmt: skip
        except InvalidToken as exc:
            raise _jwt_error("Invalid API key", str(exc)) from exc

        token = bearer_token(request)
        if token is None:
            return key_claims
        if token.startswith("sb_"):
            # The gateway swaps an opaque key in Authorization for its JWT as well.
            try:
                return self.keys.claims_for_api_key(token)
            except InvalidToken as exc:
                raise _jwt_error("Invalid API key", str(exc)) from exc
        try:
            return self.keys.decode(token)
        except InvalidToken as exc:
            if str(exc) == "jwt expired":
                raise _jwt_error("JWT expired", None, code="PGRST303") from exc
            raise _jwt_error(str(exc), None) from exc

    def _schema(self, request: Request) -> str:
        header = "accept-profile" if request.method in {"GET", "HEAD"} else "content-profile"
        schema = request.headers.get(header, "public")
        if schema not in EXPOSED_SCHEMAS:
            raise PostgrestError(
                406,
                "PGRST106",
                f"Invalid schema: {schema}",
                hint="Only the following schemas are exposed: " + ", ".join(EXPOSED_SCHEMAS),
            )
        return schema

    async def _json_body(self, request: Request) -> Any:
        try:
            raw = await read_body(request, self.max_body_bytes)
        except BodyTooLarge as exc:
            # What a gateway answers; the client reports the status as the code.
            raise PostgrestError(
                413,
                "413",
                str(exc),
                hint="split the request, e.g. insert fewer rows per call",
            ) from exc
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise PostgrestError(
                400, "PGRST102", "Empty or invalid json", details=str(exc)
            ) from exc

    def _transaction(self, claims: dict[str, Any]) -> _ClaimsTransaction:
        return _ClaimsTransaction(self.database, claims)


def _check_max_affected(prefs: Preferences, count: int) -> None:
    if prefs.strict and prefs.max_affected is not None and count > prefs.max_affected:
        raise PostgrestError(
            400,
            "PGRST124",
            "Query result exceeds max-affected preference constraint",
            details=f"The query affects {count} rows",
        )


class _ClaimsTransaction:
    """``database.as_claims`` with database errors turned into PostgREST errors."""

    def __init__(self, database: Database, claims: dict[str, Any]) -> None:
        self._context = database.as_claims(claims)
        self._role = str(claims.get("role", "anon"))

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            return await self._context.__aenter__()
        except InvalidRole as exc:
            raise PostgrestError(401, "22023", str(exc)) from exc

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            await self._context.__aexit__(exc_type, exc, tb)
        except asyncpg.PostgresError as error:
            raise database_error(error, self._role) from error
        if isinstance(exc, asyncpg.PostgresError):
            raise database_error(exc, self._role) from exc
        return False


# -- statements -------------------------------------------------------------------------------


async def _apply_timezone(conn: asyncpg.Connection, prefs: Preferences) -> None:
    """``Prefer: timezone=...``: render timestamptz values in that zone, as PostgREST does.

    An unknown zone is ignored (and not reported as applied) unless ``handling=strict``.
    """
    if prefs.timezone is None:
        return
    known = await conn.fetchval(
        "select exists(select 1 from pg_timezone_names where name = $1)", prefs.timezone
    )
    if known:
        await conn.execute("select set_config('timezone', $1, true)", prefs.timezone)
        return
    applied = f"timezone={prefs.timezone}"
    if applied in prefs.applied:
        prefs.applied.remove(applied)
    if prefs.strict:
        raise PostgrestError(
            400, "PGRST122", "Invalid preferences given with handling=strict",
            details=f"Invalid preferences: {applied}",
        )  # fmt: skip


async def _read(
    conn: asyncpg.Connection,
    table: sql.Table,
    query: TableQuery,
    prefs: Preferences,
    embeds: dict[EmbedItem, sql.Embed],
    representation: Representation,
) -> tuple[Result, int | None]:
    params = sql.Params()
    select = sql.select_list(table, query.select, params, embeds)
    where = sql.where_clause(table, query.filters, params, sql.embed_conditions(embeds, params))
    limit = min(query.limit if query.limit is not None else sql.MAX_ROWS, sql.MAX_ROWS)
    source = (
        f"{table.qualified} as _t{where}{sql.order_clause(table, query.order, params)}"
        f" limit {params.add(limit)} offset {params.add(query.offset)}"
    )
    statement = sql.aggregate(source, select, strip_nulls=representation.strip_nulls)
    result = await fetch_result(conn, statement, params)
    total = None
    if prefs.count:
        count_params = sql.Params()
        count_where = sql.where_clause(
            table, query.filters, count_params, sql.embed_conditions(embeds, count_params)
        )
        total = await conn.fetchval(
            f"select count(*) from {table.qualified} as _t{count_where}", *count_params.values
        )
    return result, total


async def _insert(
    conn: asyncpg.Connection,
    table: sql.Table,
    query: TableQuery,
    prefs: Preferences,
    body: Any,
    embeds: dict[EmbedItem, sql.Embed],
    representation: Representation,
) -> Result:
    rows = body if isinstance(body, list) else [body]
    if not all(isinstance(row, dict) for row in rows):
        raise PostgrestError(400, "PGRST102", "All object keys must match")
    if query.columns is not None:
        columns = query.columns
    else:
        key_sets = {tuple(sorted(row)) for row in rows}
        if len(key_sets) > 1:
            raise PostgrestError(400, "PGRST102", "All object keys must match")
        columns = list(rows[0]) if rows else []
    columns = [table.payload_column(column) for column in columns]

    params = sql.Params()
    payload = params.add(json.dumps(rows))
    quoted = ", ".join(sql.quote_ident(column) for column in columns)
    if not columns:
        source = f"select from json_populate_recordset(null::{table.qualified}, {payload}::json)"
        statement = f"insert into {table.qualified} as _t {source}"
    else:
        values = _insert_values(table, columns, params, prefs.missing_default)
        source = (
            f"select {values} from json_array_elements({payload}::json)"
            " with ordinality as _lb_a(_lb_o, _lb_i),"
            f" json_populate_record(null::{table.qualified}, _lb_a._lb_o) as _lb_r"
            " order by _lb_a._lb_i"
        )
        statement = f"insert into {table.qualified} as _t ({quoted}) {source}"
    statement += _on_conflict(table, query, prefs, columns)
    with_rows = (
        f"with _lb_ins as ({statement} returning _t as _lb_rec, (_t.xmax = 0) as _lb_new),"
        " _lb_rows as (select (_lb_rec).* from _lb_ins) "
    )
    select = sql.select_list(table, query.select, params, embeds)
    statement = with_rows + sql.aggregate(
        "_lb_rows as _t",
        select,
        strip_nulls=representation.strip_nulls,
        extra="(select count(*) from _lb_ins where _lb_new)",
    )
    row = await conn.fetchrow(statement, *params.values)
    assert row is not None
    return Result(body=row[0], first=row[1], count=row[2], inserted=row[3])


def _insert_values(
    table: sql.Table, columns: list[str], params: sql.Params, missing_default: bool
) -> str:
    """Per column: the JSON value; with ``missing=default`` the column default when the key
    is absent (an explicit null stays null)."""
    values = []
    for column in columns:
        value = f"_lb_r.{sql.quote_ident(column)}"
        default = (table.defaults or {}).get(column) if missing_default else None
        if default is not None:
            value = (
                f"case when _lb_a._lb_o::jsonb ? {params.add(column)}::text"
                f" then {value} else {default} end"
            )
        values.append(value)
    return ", ".join(values)


def _on_conflict(
    table: sql.Table, query: TableQuery, prefs: Preferences, columns: list[str]
) -> str:
    if prefs.resolution is None:
        return ""
    target = query.on_conflict or list(table.primary_key)
    if not target:
        raise PostgrestError(
            400, "PGRST100", f"table {table.name} has no primary key; pass on_conflict"
        )
    for column in target:
        table.column_type(column)
    conflict = ", ".join(sql.quote_ident(column) for column in target)
    updates = [column for column in columns if column not in target]
    if prefs.resolution == "ignore-duplicates" or not updates:
        return f" on conflict ({conflict}) do nothing"
    assignments = ", ".join(
        f"{sql.quote_ident(column)} = excluded.{sql.quote_ident(column)}" for column in updates
    )
    return f" on conflict ({conflict}) do update set {assignments}"


async def _update(
    conn: asyncpg.Connection,
    table: sql.Table,
    query: TableQuery,
    body: Any,
    embeds: dict[EmbedItem, sql.Embed],
    representation: Representation,
) -> Result:
    if not isinstance(body, dict):
        raise PostgrestError(400, "PGRST102", "Request body must be a JSON object for PATCH")
    columns = [table.payload_column(column) for column in body]
    params = sql.Params()
    payload = params.add(json.dumps(body))
    if not columns:
        # Nothing to set: PostgREST answers without touching (or returning) any row.
        return Result(body="[]", first=None, count=0)
    assignments = ", ".join(
        f"{sql.quote_ident(column)} = _lb_new.{sql.quote_ident(column)}" for column in columns
    )
    where = sql.where_clause(table, query.filters, params)
    statement = (
        f"update {table.qualified} as _t set {assignments}"
        f" from json_populate_record(null::{table.qualified}, {payload}::json) as _lb_new"
        f"{where} returning _t.*"
    )
    select = sql.select_list(table, query.select, params, embeds)
    with_rows = f"with _lb_rows as ({statement}) "
    return await fetch_result(
        conn,
        with_rows + sql.aggregate("_lb_rows as _t", select, strip_nulls=representation.strip_nulls),
        params,
    )


async def _delete(
    conn: asyncpg.Connection,
    table: sql.Table,
    query: TableQuery,
    embeds: dict[EmbedItem, sql.Embed],
    representation: Representation,
) -> Result:
    params = sql.Params()
    where = sql.where_clause(table, query.filters, params)
    statement = f"delete from {table.qualified} as _t{where} returning _t.*"
    select = sql.select_list(table, query.select, params, embeds)
    with_rows = f"with _lb_rows as ({statement}) "
    return await fetch_result(
        conn,
        with_rows + sql.aggregate("_lb_rows as _t", select, strip_nulls=representation.strip_nulls),
        params,
    )


# -- responses --------------------------------------------------------------------------------


def _table_response(
    request: Request,
    table: sql.Table,
    result: Result,
    total: int | None,
    query: TableQuery,
    prefs: Preferences,
    representation: Representation,
) -> Response:
    headers = {}
    if prefs.applied:
        headers["Preference-Applied"] = ", ".join(prefs.applied)
    method = request.method
    if method in {"GET", "HEAD"}:
        status, headers["Content-Range"] = read_status_and_range(query.offset, result.count, total)
        return json_response(result, representation, status, headers, head=method == "HEAD")

    counted = str(result.count) if prefs.count else "*"
    if method == "PATCH" and result.count:
        headers["Content-Range"] = f"0-{result.count - 1}/{counted}"
    else:
        headers["Content-Range"] = f"*/{counted}"
    status = 200 if method != "POST" else 201
    if method == "POST" and prefs.resolution == "merge-duplicates" and result.inserted == 0:
        status = 200
    if prefs.return_ == "representation":
        return json_response(result, representation, status, headers)
    if method == "POST" and prefs.return_ == "headers-only" and result.first:
        location = _location(table, json.loads(result.first))
        if location:
            headers["Location"] = location
    return Response(status_code=status if method == "POST" else 204, headers=headers)


def _location(table: sql.Table, row: dict[str, Any]) -> str | None:
    """``/<table>?<pk>=eq.<value>`` for the first inserted row (``return=headers-only``)."""
    if not table.primary_key or not all(column in row for column in table.primary_key):
        return None
    parts = [f"{quote(column)}=eq.{quote(str(row[column]))}" for column in table.primary_key]
    return f"/{quote(table.name)}?" + "&".join(parts)


async def fetch_result(conn: asyncpg.Connection, statement: str, params: sql.Params) -> Result:
    row = await conn.fetchrow(statement, *params.values)
    assert row is not None
    return Result(body=row[0], first=row[1], count=row[2])


def _jwt_error(message: str, details: str | None, code: str = "PGRST301") -> PostgrestError:
    return PostgrestError(
        401,
        code,
        message,
        details=details,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'
        },
    )


def database_error(error: asyncpg.PostgresError, role: str) -> PostgrestError:
    sqlstate = error.sqlstate or "XX000"
    return PostgrestError(
        status_for_sqlstate(sqlstate, role=role),
        sqlstate,
        getattr(error, "message", None) or str(error),
        details=getattr(error, "detail", None),
        hint=getattr(error, "hint", None),
    )
