"""PostgREST endpoints: tables (GET/HEAD/POST/PATCH/DELETE) and ``/rpc/<fn>``.

Every request runs in one transaction as the JWT's role with ``request.jwt.claims`` set
(:meth:`Database.as_claims`), so the table's real RLS policies decide what is visible.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

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
from localbase.rest.query import (
    RESERVED_PARAMS,
    Filter,
    LogicTree,
    Preferences,
    QueryError,
    parse_columns,
    parse_filter,
    parse_logic,
    parse_non_negative_int,
    parse_order,
    parse_prefer,
    parse_select,
)

logger = logging.getLogger(__name__)

EXPOSED_SCHEMAS = ("public",)
JSON_TYPE = "application/json; charset=utf-8"
OBJECT_MEDIA_TYPE = "application/vnd.pgrst.object+json"


def create_rest_app(database: Database, keys: ProjectKeys) -> Starlette:
    """Return the ASGI app to mount at ``/rest/v1``."""
    service = RestService(database, keys)
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


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("rest request failed: %s %s", request.method, request.url.path, exc_info=exc)
    error = PostgrestError(500, "PGRST000", "internal error in localbase, see the server log")
    return await postgrest_error_response(request, error)


@dataclass
class _Result:
    body: str  # JSON array text
    first: str | None  # JSON text of the first row
    count: int


class RestService:
    def __init__(self, database: Database, keys: ProjectKeys) -> None:
        self.database = database
        self.keys = keys

    async def root(self, request: Request) -> Response:
        self._claims(request)
        return JSONResponse({"swagger": "2.0", "info": {"title": "localbase rest"}, "paths": {}})

    # -- tables -----------------------------------------------------------------------------

    async def table(self, request: Request) -> Response:
        claims = self._claims(request)
        schema = self._schema(request)
        name = request.path_params["table"]
        singular = _wants_object(request)
        prefs = parse_prefer(request.headers.getlist("prefer"))
        try:
            query = _TableQuery.from_request(request)
            body = await _json_body(request) if request.method in {"POST", "PATCH"} else None
        except QueryError as exc:
            raise PostgrestError(400, "PGRST100", exc.message, details=exc.details) from exc

        async with self._transaction(claims) as conn:
            table = await sql.load_table(conn, schema, name)
            if request.method in {"GET", "HEAD"}:
                result, total = await self._read(conn, table, query, prefs)
            elif request.method == "POST":
                result, total = await self._insert(conn, table, query, prefs, body), None
            elif request.method == "PATCH":
                result, total = await self._update(conn, table, query, body), None
            else:
                result, total = await self._delete(conn, table, query), None
            if singular and result.count != 1:
                # Raised inside the transaction: a singular mutation is rolled back.
                raise _not_singular(result.count)

        return self._table_response(request, result, total, query, prefs, singular)

    async def _read(
        self, conn: asyncpg.Connection, table: sql.Table, query: _TableQuery, prefs: Preferences
    ) -> tuple[_Result, int | None]:
        params = sql.Params()
        where = sql.where_clause(table, query.filters, params)
        select = sql.select_list(table, query.select)
        limit = min(query.limit if query.limit is not None else sql.MAX_ROWS, sql.MAX_ROWS)
        source = (
            f"{table.qualified} as _t{where}{sql.order_clause(table, query.order)}"
            f" limit {params.add(limit)} offset {params.add(query.offset)}"
        )
        result = await _fetch(conn, sql.aggregate(source, select), params)
        total = None
        if prefs.count:
            count_params = sql.Params()
            count_where = sql.where_clause(table, query.filters, count_params)
            total = await conn.fetchval(
                f"select count(*) from {table.qualified} as _t{count_where}", *count_params.values
            )
        return result, total

    async def _insert(
        self,
        conn: asyncpg.Connection,
        table: sql.Table,
        query: _TableQuery,
        prefs: Preferences,
        body: Any,
    ) -> _Result:
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
        source = f"json_populate_recordset(null::{table.qualified}, {payload}::json)"
        if columns:
            statement = (
                f"insert into {table.qualified} as _t ({quoted}) select {quoted} from {source}"
            )
        else:
            statement = f"insert into {table.qualified} as _t select from {source}"
        statement += self._on_conflict(table, query, prefs, columns)
        with_rows = f"with _lb_rows as ({statement} returning _t.*) "
        select = sql.select_list(table, query.select)
        return await _fetch(conn, with_rows + sql.aggregate("_lb_rows as _t", select), params)

    def _on_conflict(
        self, table: sql.Table, query: _TableQuery, prefs: Preferences, columns: list[str]
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
        self, conn: asyncpg.Connection, table: sql.Table, query: _TableQuery, body: Any
    ) -> _Result:
        if not isinstance(body, dict):
            raise PostgrestError(400, "PGRST102", "Request body must be a JSON object for PATCH")
        columns = [table.payload_column(column) for column in body]
        params = sql.Params()
        payload = params.add(json.dumps(body))
        select = sql.select_list(table, query.select)
        if not columns:
            where = sql.where_clause(table, query.filters, params)
            return await _fetch(
                conn, sql.aggregate(f"{table.qualified} as _t{where}", select), params
            )
        assignments = ", ".join(
            f"{sql.quote_ident(column)} = _lb_new.{sql.quote_ident(column)}" for column in columns
        )
        where = sql.where_clause(table, query.filters, params)
        statement = (
            f"update {table.qualified} as _t set {assignments}"
            f" from json_populate_record(null::{table.qualified}, {payload}::json) as _lb_new"
            f"{where} returning _t.*"
        )
        with_rows = f"with _lb_rows as ({statement}) "
        return await _fetch(conn, with_rows + sql.aggregate("_lb_rows as _t", select), params)

    async def _delete(
        self, conn: asyncpg.Connection, table: sql.Table, query: _TableQuery
    ) -> _Result:
        params = sql.Params()
        where = sql.where_clause(table, query.filters, params)
        statement = f"delete from {table.qualified} as _t{where} returning _t.*"
        select = sql.select_list(table, query.select)
        with_rows = f"with _lb_rows as ({statement}) "
        return await _fetch(conn, with_rows + sql.aggregate("_lb_rows as _t", select), params)

    def _table_response(
        self,
        request: Request,
        result: _Result,
        total: int | None,
        query: _TableQuery,
        prefs: Preferences,
        singular: bool,
    ) -> Response:
        headers = {}
        if prefs.applied:
            headers["Preference-Applied"] = ", ".join(prefs.applied)
        method = request.method
        if method in {"GET", "HEAD"}:
            status = 200
            total_text = "*" if total is None else str(total)
            if result.count:
                first = query.offset
                headers["Content-Range"] = f"{first}-{first + result.count - 1}/{total_text}"
                if total is not None and first + result.count < total:
                    status = 206
            else:
                headers["Content-Range"] = f"*/{total_text}"
            return _json_response(result, singular, status, headers, head=method == "HEAD")

        counted = str(result.count) if prefs.count else "*"
        if method == "POST":
            headers["Content-Range"] = f"*/{counted}"
        elif method == "PATCH" and result.count:
            headers["Content-Range"] = f"0-{result.count - 1}/{counted}"
        else:
            headers["Content-Range"] = f"*/{counted}"
        if prefs.return_ == "representation":
            status = 201 if method == "POST" else 200
            return _json_response(result, singular, status, headers)
        return Response(status_code=201 if method == "POST" else 204, headers=headers)

    # -- rpc --------------------------------------------------------------------------------

    async def rpc(self, request: Request) -> Response:
        claims = self._claims(request)
        schema = self._schema(request)
        name = request.path_params["function"]
        singular = _wants_object(request)
        if request.method == "POST":
            args = await _json_body(request)
            if not isinstance(args, dict):
                raise PostgrestError(400, "PGRST102", "rpc arguments must be a JSON object")
        else:
            args = {k: v for k, v in request.query_params.items() if k not in RESERVED_PARAMS}

        async with self._transaction(claims) as conn:
            if request.method != "POST":
                await conn.execute("set transaction read only")
            function = await sql.load_function(conn, schema, name, set(args))
            params = sql.Params()
            call_args = ", ".join(
                f"{sql.quote_ident(arg)} => _lb_args.{sql.quote_ident(arg)}"
                for arg, _ in function.arguments
                if arg in args
            )
            definitions = ", ".join(
                f"{sql.quote_ident(arg)} {arg_type}"
                for arg, arg_type in function.arguments
                if arg in args
            )
            source = (
                f" from json_to_record({params.add(json.dumps(args))}::json)"
                f" as _lb_args({definitions})"
                if definitions
                else ""
            )
            call = f"{function.qualified}({call_args})"
            if function.returns_void:
                await conn.execute(f"select {call}{source}", *params.values)
                return Response(status_code=204)
            if function.returns_set:
                lateral = f"{source}, {call} as _lb_row" if source else f" from {call} as _lb_row"
                statement = (
                    "select coalesce(json_agg(_lb_row), '[]')::text,"
                    f" (json_agg(_lb_row) -> 0)::text, count(*){lateral}"
                )
                result = await _fetch(conn, statement, params)
                if singular and result.count != 1:
                    raise _not_singular(result.count)
                headers = {"Content-Range": _range(result.count)}
                return _json_response(result, singular, 200, headers, head=request.method == "HEAD")
            value = await conn.fetchval(f"select to_json({call})::text{source}", *params.values)

        return Response(
            value if value is not None else "null",
            media_type=JSON_TYPE,
            headers={"Content-Range": "0-0/*"},
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

    def _transaction(self, claims: dict[str, Any]) -> _ClaimsTransaction:
        return _ClaimsTransaction(self.database, claims)


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
            raise _database_error(error, self._role) from error
        if isinstance(exc, asyncpg.PostgresError):
            raise _database_error(exc, self._role) from exc
        return False


@dataclass
class _TableQuery:
    select: list[Any]
    filters: list[Filter | LogicTree]
    order: list[Any]
    limit: int | None
    offset: int
    columns: list[str] | None
    on_conflict: list[str] | None

    @classmethod
    def from_request(cls, request: Request) -> _TableQuery:
        params = request.query_params
        filters: list[Filter | LogicTree] = []
        for key, value in params.multi_items():
            if key in {"or", "and", "not.or", "not.and"}:
                filters.append(parse_logic(key, value))
            elif key not in RESERVED_PARAMS:
                filters.append(parse_filter(key, value))
        limit = params.get("limit")
        offset = params.get("offset")
        columns = params.get("columns")
        on_conflict = params.get("on_conflict")
        return cls(
            select=parse_select(params.get("select")),
            filters=filters,
            order=parse_order(params["order"]) if params.get("order") else [],
            limit=parse_non_negative_int("limit", limit) if limit is not None else None,
            offset=parse_non_negative_int("offset", offset) if offset is not None else 0,
            columns=parse_columns(columns) if columns else None,
            on_conflict=parse_columns(on_conflict) if on_conflict else None,
        )


async def _fetch(conn: asyncpg.Connection, statement: str, params: sql.Params) -> _Result:
    row = await conn.fetchrow(statement, *params.values)
    assert row is not None
    return _Result(body=row[0], first=row[1], count=row[2])


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise PostgrestError(400, "PGRST102", "Empty or invalid json", details=str(exc)) from exc


def _wants_object(request: Request) -> bool:
    return OBJECT_MEDIA_TYPE in request.headers.get("accept", "")


def _not_singular(count: int) -> PostgrestError:
    return PostgrestError(
        406,
        "PGRST116",
        "Cannot coerce the result to a single JSON object",
        details=f"The result contains {count} rows",
    )


def _json_response(
    result: _Result, singular: bool, status: int, headers: dict[str, str], *, head: bool = False
) -> Response:
    if singular:
        body, media_type = result.first or "null", f"{OBJECT_MEDIA_TYPE}; charset=utf-8"
    else:
        body, media_type = result.body, JSON_TYPE
    return Response(
        b"" if head else body, status_code=status, media_type=media_type, headers=headers
    )


def _range(count: int) -> str:
    return f"0-{count - 1}/*" if count else "*/*"


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


def _database_error(error: asyncpg.PostgresError, role: str) -> PostgrestError:
    sqlstate = error.sqlstate or "XX000"
    return PostgrestError(
        status_for_sqlstate(sqlstate, role=role),
        sqlstate,
        error.message if hasattr(error, "message") else str(error),
        details=getattr(error, "detail", None),
        hint=getattr(error, "hint", None),
    )
