"""Parsed PostgREST requests -> SQL text plus bound values.

Identifiers come from the catalog (:class:`Table`) and are always quoted; request values only
ever travel as bound parameters, cast to the catalog's column type. The target table is
aliased ``_t``; embedded tables ``_t1``, ``_t2``, ... by depth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from localbase.errors import PostgrestError
from localbase.rest.catalog import (
    ForeignKey,
    Function,
    Table,
    load_foreign_keys,
    load_function,
    load_table,
    quote_ident,
)
from localbase.rest.query import (
    FTS_OPERATORS,
    EmbedItem,
    Filter,
    JsonPath,
    LogicTree,
    OrderTerm,
)

__all__ = ["Function", "Table", "load_function", "load_table", "quote_ident"]

MAX_ROWS = 1000  # Supabase's default db max_rows
MAX_EMBED_DEPTH = 4

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
    "sl": "<<",
    "sr": ">>",
    "nxr": "&<",
    "nxl": "&>",
    "adj": "-|-",
}
_TEXT_MATCHES = {"like": "like", "ilike": "ilike", "match": "~", "imatch": "~*"}
_FTS_FUNCTIONS = {
    "fts": "to_tsquery",
    "plfts": "plainto_tsquery",
    "phfts": "phraseto_tsquery",
    "wfts": "websearch_to_tsquery",
}
_IS = {
    "null": "is null",
    "not_null": "is not null",
    "true": "is true",
    "false": "is false",
    "unknown": "is unknown",
}
_INTEGER = re.compile(r"^-?\d{1,9}$")


class Params:
    """Collects bound values and hands out ``$n`` placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@dataclass(frozen=True)
class Embed:
    """An :class:`EmbedItem` resolved against the catalog."""

    item: EmbedItem
    table: Table
    pairs: tuple[tuple[str, str], ...]  # (embedded column, parent column)
    many: bool
    nested: dict[EmbedItem, Embed] = field(default_factory=dict)


# -- select --------------------------------------------------------------------------------


async def resolve_embeds(
    conn: asyncpg.Connection, table: Table, items: list[Any] | tuple[Any, ...], depth: int = 1
) -> dict[EmbedItem, Embed]:
    """Look up the tables and foreign keys of the embedded resources in ``items``."""
    wanted = [item for item in items if isinstance(item, EmbedItem)]
    if not wanted:
        return {}
    if depth > MAX_EMBED_DEPTH:
        raise PostgrestError(
            400, "PGRST100", f"embedding is limited to {MAX_EMBED_DEPTH} levels in localbase"
        )
    keys = await load_foreign_keys(conn, table)
    resolved: dict[EmbedItem, Embed] = {}
    for item in wanted:
        key, many, target_name = _pick_foreign_key(table, item, keys)
        target = await load_table(conn, table.schema, target_name)
        if many:
            pairs = tuple(zip(key.columns, key.referenced_columns, strict=True))
        else:
            pairs = tuple(zip(key.referenced_columns, key.columns, strict=True))
        nested = await resolve_embeds(conn, target, item.items, depth + 1)
        resolved[item] = Embed(item, target, pairs, many and not key.unique, nested)
    return resolved


def _pick_foreign_key(
    table: Table, item: EmbedItem, keys: list[ForeignKey]
) -> tuple[ForeignKey, bool, str]:
    """The one foreign key joining ``table`` to ``item.relation``: (key, to-many, target)."""
    here = (table.schema, table.name)
    candidates: list[tuple[ForeignKey, bool, str]] = []
    for key in keys:
        outgoing = key.table == here and key.referenced[0] == table.schema
        incoming = key.referenced == here and key.table[0] == table.schema
        # many-to-one: by the referenced table's name or by the single key column's name
        by_column = len(key.columns) == 1 and item.relation == key.columns[0]
        if outgoing and (item.relation == key.referenced[1] or by_column):
            candidates.append((key, False, key.referenced[1]))
        if incoming and item.relation == key.table[1]:
            candidates.append((key, True, key.table[1]))
    if item.hint is not None:
        candidates = [
            candidate
            for candidate in candidates
            if item.hint == candidate[0].name or item.hint in candidate[0].columns
        ]
    if not candidates:
        raise PostgrestError(
            400,
            "PGRST200",
            f"Could not find a relationship between '{table.name}' and '{item.relation}'"
            " in the schema cache",
            hint="localbase embeds tables joined by a direct foreign key only (no join tables,"
            " views or other schemas)",
        )
    if len(candidates) > 1:
        names = ", ".join(candidate[0].name for candidate in candidates)
        raise PostgrestError(
            300,
            "PGRST201",
            f"Could not embed because more than one relationship was found for"
            f" '{table.name}' and '{item.relation}'",
            details=f"foreign keys: {names}",
            hint=f"name one of them with '{item.relation}!<foreign key name>'",
        )
    return candidates[0]


def select_list(
    table: Table,
    items: list[Any] | tuple[Any, ...],
    params: Params,
    embeds: dict[EmbedItem, Embed] | None = None,
    alias: str = "_t",
    depth: int = 0,
) -> str:
    parts = []
    for item in items:
        if isinstance(item, EmbedItem):
            embed = (embeds or {})[item]
            parts.append(
                f"{_embed_sql(embed, params, alias, depth + 1)} as {quote_ident(item.output_name)}"
            )
            continue
        if item.column == "*":
            parts.append(f"{alias}.*")
            continue
        expression, _ = field_sql(table, item.column, item.path, params, alias)
        if item.cast:
            expression = f"({expression})::{item.cast}"
        parts.append(f"{expression} as {quote_ident(item.output_name)}")
    return ", ".join(parts) if parts else "null as _lb_none"


def embed_conditions(
    embeds: dict[EmbedItem, Embed] | None, params: Params, alias: str = "_t", depth: int = 0
) -> list[str]:
    """``exists (...)`` conditions for ``!inner`` embeds (parent rows without a match drop)."""
    conditions = []
    for embed in (embeds or {}).values():
        if embed.item.inner:
            child = f"_t{depth + 1}"
            join = _join_condition(embed, alias, child)
            conditions.append(
                f"exists (select from {embed.table.qualified} as {child} where {join})"
            )
    return conditions


def _embed_sql(embed: Embed, params: Params, parent: str, depth: int) -> str:
    child = f"_t{depth}"
    select = select_list(embed.table, embed.item.items, params, embed.nested, child, depth)
    conditions = [_join_condition(embed, parent, child)]
    conditions += embed_conditions(embed.nested, params, child, depth)
    source = f"select {select} from {embed.table.qualified} as {child} where " + " and ".join(
        conditions
    )
    if embed.many:
        return f"(select coalesce(json_agg(_lb_e), '[]') from ({source}) as _lb_e)"
    return f"(select row_to_json(_lb_e) from ({source} limit 1) as _lb_e)"


def _join_condition(embed: Embed, parent: str, child: str) -> str:
    return " and ".join(
        f"{child}.{quote_ident(mine)} = {parent}.{quote_ident(theirs)}"
        for mine, theirs in embed.pairs
    )


def field_sql(
    table: Table, column: str, path: JsonPath, params: Params, alias: str = "_t"
) -> tuple[str, str]:
    """SQL for ``column`` (with its JSON path) and the SQL type of the result."""
    column_type = table.column_type(column)
    expression = f"{alias}.{quote_ident(column)}"
    result_type = column_type
    for arrow, key in path:
        placeholder = (
            f"{params.add(int(key))}::int" if _INTEGER.match(key) else f"{params.add(key)}::text"
        )
        expression = f"({expression} {arrow} {placeholder})"
        result_type = "text" if arrow == "->>" else ("json" if column_type == "json" else "jsonb")
    return expression, result_type


# -- where / order -------------------------------------------------------------------------


def where_clause(
    table: Table, filters: list[Filter | LogicTree], params: Params, extra: list[str] | None = None
) -> str:
    conditions = [_condition(table, item, params) for item in filters] + (extra or [])
    if not conditions:
        return ""
    return " where " + " and ".join(conditions)


def _condition(table: Table, item: Filter | LogicTree, params: Params) -> str:
    if isinstance(item, LogicTree):
        joiner = f" {item.operator} "
        inner = joiner.join(_condition(table, child, params) for child in item.children)
        return f"not ({inner})" if item.negated else f"({inner})"

    column, column_type = field_sql(table, item.column, item.path, params)
    operator = item.operator
    if operator == "is":
        sql = f"{column} {_IS[str(item.value)]}"
    elif operator == "in":
        values = list(item.value)
        sql = f"{column} = any({params.add(values)}::text[]::{column_type}[])"
    elif operator in FTS_OPERATORS:
        sql = _fts(column, column_type, item, params)
    elif item.modifier in {"any", "all"}:
        values = f"{params.add(str(item.value))}::text::text[]"
        if operator in _TEXT_MATCHES:
            if operator in {"like", "ilike"}:
                values = f"array(select replace(_lb_v, '*', '%') from unnest({values}) as _lb_v)"
            sql = f"{column}::text {_TEXT_MATCHES[operator]} {item.modifier}({values})"
        else:
            sql = f"{column} {_COMPARISONS[operator]} {item.modifier}({values}::{column_type}[])"
    elif operator in _TEXT_MATCHES:
        pattern = str(item.value)
        if operator in {"like", "ilike"}:
            pattern = pattern.replace("*", "%")
        sql = f"{column}::text {_TEXT_MATCHES[operator]} {params.add(pattern)}::text"
    else:
        value = params.add(str(item.value))
        sql = f"{column} {_COMPARISONS[operator]} {value}::text::{column_type}"
    return f"not ({sql})" if item.negated else sql


def _fts(column: str, column_type: str, item: Filter, params: Params) -> str:
    function = _FTS_FUNCTIONS[item.operator]
    config = f"{params.add(item.modifier)}::regconfig, " if item.modifier else ""
    document = column if column_type == "tsvector" else f"to_tsvector({config}{column}::text)"
    return f"{document} @@ {function}({config}{params.add(str(item.value))}::text)"


def order_clause(table: Table, terms: list[OrderTerm], params: Params) -> str:
    if not terms:
        return ""
    parts = []
    for term in terms:
        expression, _ = field_sql(table, term.column, term.path, params)
        sql = f"{expression} {'desc' if term.descending else 'asc'}"
        if term.nulls:
            sql += f" nulls {term.nulls}"
        parts.append(sql)
    return " order by " + ", ".join(parts)


def aggregate(source: str, select: str, *, strip_nulls: bool = False, extra: str = "") -> str:
    """Wrap rows of ``source`` (aliased _t) into (json array text, first row text, count),
    plus ``extra`` as a fourth column when given."""
    row = "json_strip_nulls(row_to_json(_lb_row))" if strip_nulls else "_lb_row"
    return (
        f"select coalesce(json_agg({row}), '[]')::text,"
        f" (json_agg({row}) -> 0)::text, count(*){', ' + extra if extra else ''}"
        f" from (select {select} from {source}) as _lb_row"
    )
