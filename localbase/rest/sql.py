"""Parsed PostgREST requests -> SQL text plus bound values.

Identifiers come from the catalog (:class:`Table`, :class:`Function`) and are always quoted;
request values only ever travel as bound parameters, cast to the catalog's column type.
The target table is always aliased ``_t``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from localbase.errors import PostgrestError
from localbase.rest.query import Filter, LogicTree, OrderTerm, SelectItem

MAX_ROWS = 1000  # Supabase's default db max_rows

_COMPARISONS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "isdistinct": "is distinct from",
    "cs": "@>",
    "cd": "<@",
    "ov": "&&",
}
_TEXT_MATCHES = {"like": "like", "ilike": "ilike", "match": "~", "imatch": "~*"}
_IS = {
    "null": "is null",
    "not_null": "is not null",
    "true": "is true",
    "false": "is false",
    "unknown": "is unknown",
}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: dict[str, str]  # name -> format_type(...)
    primary_key: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def column_type(self, column: str) -> str:
        try:
            return self.columns[column]
        except KeyError:
            raise PostgrestError(
                400, "42703", f"column {self.name}.{column} does not exist"
            ) from None

    def payload_column(self, column: str) -> str:
        if column not in self.columns:
            raise PostgrestError(
                400,
                "PGRST204",
                f"Could not find the '{column}' column of '{self.name}' in the schema cache",
            )
        return column


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    arguments: tuple[tuple[str, str], ...]  # input (name, type) in order
    required: frozenset[str]
    returns_set: bool
    returns_void: bool

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


_TABLE_SQL = """
select c.relname,
       coalesce(array_agg(a.attname::text order by a.attnum)
                filter (where a.attname is not null), '{}') as names,
       coalesce(array_agg(format_type(a.atttypid, a.atttypmod) order by a.attnum)
                filter (where a.attname is not null), '{}') as types,
       array(select pa.attname::text
               from pg_index i
               join pg_attribute pa on pa.attrelid = i.indrelid and pa.attnum = any(i.indkey)
              where i.indrelid = c.oid and i.indisprimary) as primary_key
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
 where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'v', 'm', 'p', 'f')
 group by c.oid, c.relname
"""

_FUNCTION_SQL = """
select p.proname::text as name,
       coalesce(p.proargnames, '{}') as argnames,
       coalesce(p.proargmodes::text[], '{}') as argmodes,
       array(select format_type(t, null)
               from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality
                    as u(t, i) order by i) as argtypes,
       p.pronargs, p.pronargdefaults, p.proretset,
       p.prorettype = 'void'::regtype as returns_void
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = $1 and p.proname = $2 and p.prokind = 'f'
 order by p.oid
"""


async def load_table(conn: asyncpg.Connection, schema: str, name: str) -> Table:
    row = await conn.fetchrow(_TABLE_SQL, schema, name)
    if row is None:
        raise PostgrestError(
            404,
            "PGRST205",
            f"Could not find the table '{schema}.{name}' in the schema cache",
        )
    return Table(
        schema, name, dict(zip(row["names"], row["types"], strict=True)), tuple(row["primary_key"])
    )


async def load_function(
    conn: asyncpg.Connection, schema: str, name: str, given: set[str]
) -> Function:
    """The overload of ``schema.name`` whose parameter names fit the given argument names."""
    for row in await conn.fetch(_FUNCTION_SQL, schema, name):
        modes = row["argmodes"] or ["i"] * len(row["argtypes"])
        inputs = [
            (arg_name, arg_type)
            for arg_name, arg_type, mode in zip(
                row["argnames"] or [""] * len(modes), row["argtypes"], modes, strict=False
            )
            if mode in {"i", "b", "v"}
        ]
        names = [arg_name for arg_name, _ in inputs]
        if any(not arg_name for arg_name in names):
            continue  # unnamed parameters cannot be called by name
        required = set(names[: len(names) - row["pronargdefaults"]])
        if required <= given <= set(names):
            return Function(
                schema,
                name,
                tuple(inputs),
                frozenset(required),
                row["proretset"],
                row["returns_void"],
            )
    arguments = ", ".join(sorted(given))
    raise PostgrestError(
        404,
        "PGRST202",
        f"Could not find the function {schema}.{name}({arguments}) in the schema cache",
        hint="check the function name and the names of its parameters",
    )


class Params:
    """Collects bound values and hands out ``$n`` placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def where_clause(table: Table, filters: list[Filter | LogicTree], params: Params) -> str:
    if not filters:
        return ""
    return " where " + " and ".join(_condition(table, item, params) for item in filters)


def _condition(table: Table, item: Filter | LogicTree, params: Params) -> str:
    if isinstance(item, LogicTree):
        joiner = f" {item.operator} "
        inner = joiner.join(_condition(table, child, params) for child in item.children)
        return f"not ({inner})" if item.negated else f"({inner})"

    column_type = table.column_type(item.column)
    column = f"_t.{quote_ident(item.column)}"
    operator = item.operator
    if operator == "is":
        sql = f"{column} {_IS[str(item.value)]}"
    elif operator == "in":
        values = list(item.value)
        sql = f"{column} = any({params.add(values)}::text[]::{column_type}[])"
    elif operator in _TEXT_MATCHES:
        pattern = str(item.value)
        if operator in {"like", "ilike"}:
            pattern = pattern.replace("*", "%")
        sql = f"{column}::text {_TEXT_MATCHES[operator]} {params.add(pattern)}::text"
    else:
        value = params.add(str(item.value))
        sql = f"{column} {_COMPARISONS[operator]} {value}::text::{column_type}"
    return f"not ({sql})" if item.negated else sql


def select_list(table: Table, items: list[SelectItem]) -> str:
    parts = []
    for item in items:
        if item.column == "*":
            parts.append("_t.*")
            continue
        table.column_type(item.column)
        parts.append(f"_t.{quote_ident(item.column)} as {quote_ident(item.alias or item.column)}")
    return ", ".join(parts)


def order_clause(table: Table, terms: list[OrderTerm]) -> str:
    if not terms:
        return ""
    parts = []
    for term in terms:
        table.column_type(term.column)
        sql = f"_t.{quote_ident(term.column)} {'desc' if term.descending else 'asc'}"
        if term.nulls:
            sql += f" nulls {term.nulls}"
        parts.append(sql)
    return " order by " + ", ".join(parts)


def aggregate(source: str, select: str) -> str:
    """Wrap rows of ``source`` (aliased _t) into (json array text, first row text, count)."""
    return (
        "select coalesce(json_agg(_lb_row), '[]')::text,"
        " (json_agg(_lb_row) -> 0)::text, count(*)"
        f" from (select {select} from {source}) as _lb_row"
    )
