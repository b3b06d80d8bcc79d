"""``/rpc/<function>``: call a function by argument names (protocol doc §3.6).

Functions returning rows (a table type, ``TABLE(...)`` or OUT parameters) are queried like a
table: ``select``, filters, ``order``, ``limit``/``offset``, ``Range`` and counts apply.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from localbase.errors import PostgrestError
from localbase.rest import sql
from localbase.rest.query import RESERVED_PARAMS, Preferences, SelectItem
from localbase.rest.request import TableQuery, query_errors
from localbase.rest.responses import (
    JSON_TYPE,
    Representation,
    Result,
    json_response,
    not_singular,
    read_status_and_range,
)

_LOGIC_PARAMS = frozenset({"or", "and", "not.or", "not.and"})


async def call_function(
    conn: asyncpg.Connection,
    request: Request,
    schema: str,
    name: str,
    body_args: dict[str, Any] | None,
    prefs: Preferences,
    representation: Representation,
) -> Response:
    """Run the function inside the request's transaction and build the response.

    ``body_args`` is the POST body; ``None`` for GET/HEAD, whose query parameters are the
    arguments (those named like a parameter) and filters (the rest).
    """
    head = request.method == "HEAD"
    if body_args is None:
        await conn.execute("set transaction read only")
        names = {
            key
            for key in request.query_params
            if key not in RESERVED_PARAMS and key not in _LOGIC_PARAMS
        }
        function = await sql.load_function(conn, schema, name, names, extra_allowed=True)
        args = {arg: request.query_params[arg] for arg, _ in function.arguments if arg in names}
    else:
        function = await sql.load_function(conn, schema, name, set(body_args))
        args = body_args
    with query_errors():
        query = TableQuery.from_request(request, skip=frozenset(args))

    def from_items(params: sql.Params, alias: str) -> str:
        items, call_args = [], []
        if body_args is None:
            for arg, arg_type in function.arguments:
                if arg in args:
                    value = params.add(str(args[arg]))
                    call_args.append(f"{sql.quote_ident(arg)} => {value}::text::{arg_type}")
        elif args:
            definitions = ", ".join(
                f"{sql.quote_ident(arg)} {arg_type}"
                for arg, arg_type in function.arguments
                if arg in args
            )
            items.append(
                f"json_to_record({params.add(json.dumps(args))}::json) as _lb_args({definitions})"
            )
            call_args = [
                f"{sql.quote_ident(arg)} => _lb_args.{sql.quote_ident(arg)}"
                for arg, _ in function.arguments
                if arg in args
            ]
        items.append(f"{function.qualified}({', '.join(call_args)}) as {alias}")
        return ", ".join(items)

    if function.returns_void:
        params = sql.Params()
        await conn.execute(f"select from {from_items(params, '_lb_v')}", *params.values)
        return Response(status_code=204)
    if function.result_columns is not None:
        return await _rows(conn, function, query, prefs, representation, from_items, head)
    if query.filters or query.order or query.select != [SelectItem("*")]:
        raise PostgrestError(
            400,
            "PGRST100",
            f"select, filters and order need a function returning rows; {name} returns a scalar",
        )
    if function.returns_set:
        params = sql.Params()
        limit = min(query.limit if query.limit is not None else sql.MAX_ROWS, sql.MAX_ROWS)
        statement = (
            "select coalesce(json_agg(_lb_s._lb_v), '[]')::text,"
            " (json_agg(_lb_s._lb_v) -> 0)::text, count(*)"
            f" from (select _lb_v from {from_items(params, '_lb_v')}"
            f" limit {params.add(limit)} offset {params.add(query.offset)}) as _lb_s"
        )
        row = await conn.fetchrow(statement, *params.values)
        result = Result(body=row[0], first=row[1], count=row[2])
        if representation.singular and result.count != 1:
            raise not_singular(result.count)
        _, content_range = read_status_and_range(query.offset, result.count, None)
        return json_response(
            result, representation, 200, {"Content-Range": content_range}, head=head
        )
    params = sql.Params()
    value = await conn.fetchval(
        f"select to_json(_lb_v)::text from {from_items(params, '_lb_v')}", *params.values
    )
    return Response(
        b"" if head else (value if value is not None else "null"),
        media_type=JSON_TYPE,
        headers={"Content-Range": "0-0/*"},
    )


async def _rows(
    conn: asyncpg.Connection,
    function: sql.Function,
    query: TableQuery,
    prefs: Preferences,
    representation: Representation,
    from_items: Any,
    head: bool,
) -> Response:
    assert function.result_columns is not None
    table = sql.Table(function.schema, function.name, function.result_columns, ())
    embeds = await sql.resolve_embeds(conn, table, query.select)
    params = sql.Params()
    source = from_items(params, "_t")
    select = sql.select_list(table, query.select, params, embeds)
    source += sql.where_clause(table, query.filters, params)
    source += sql.order_clause(table, query.order, params)
    if function.returns_set:
        limit = min(query.limit if query.limit is not None else sql.MAX_ROWS, sql.MAX_ROWS)
        source += f" limit {params.add(limit)} offset {params.add(query.offset)}"
    statement = sql.aggregate(source, select, strip_nulls=representation.strip_nulls)
    row = await conn.fetchrow(statement, *params.values)
    result = Result(body=row[0], first=row[1], count=row[2])
    total = None
    if prefs.count and function.returns_set:
        count_params = sql.Params()
        count_source = from_items(count_params, "_t") + sql.where_clause(
            table, query.filters, count_params
        )
        total = await conn.fetchval(f"select count(*) from {count_source}", *count_params.values)
    if function.returns_set and representation.singular and result.count != 1:
        raise not_singular(result.count)
    status, content_range = read_status_and_range(query.offset, result.count, total)
    headers = {"Content-Range": content_range}
    if not function.returns_set:  # one composite value: the object itself
        return Response(
            b"" if head else (result.first or "null"), media_type=JSON_TYPE, headers=headers
        )
    return json_response(result, representation, status, headers, head=head)
