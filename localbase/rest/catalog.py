"""What PostgREST keeps in its schema cache, read from the catalog per request.

Tables with their column types, defaults and primary key; functions by name and argument
names; foreign keys for embedding. Missing objects raise PostgREST's ``PGRST2xx`` errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from localbase.errors import PostgrestError


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: dict[str, str]  # name -> format_type(...)
    primary_key: tuple[str, ...]
    defaults: dict[str, str] | None = None  # name -> default expression (catalog SQL)
    oid: int = 0

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def column_type(self, column: str) -> str:
        try:
            return self.columns[column]
        except KeyError:
            if "." in column:
                raise PostgrestError(
                    400,
                    "PGRST100",
                    f"filters, order and limits on embedded resources ({column}) are not"
                    " supported by localbase",
                    hint="filter the top-level table, or query the embedded table directly",
                ) from None
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
    volatile: bool = True
    # Output columns when the function returns rows (a table type, TABLE(...) or OUT
    # parameters); None for scalars.
    result_columns: dict[str, str] | None = None

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: tuple[str, str]  # (schema, name) holding the key
    columns: tuple[str, ...]
    referenced: tuple[str, str]
    referenced_columns: tuple[str, ...]
    unique: bool  # the key's columns are unique in ``table`` (one-to-one)


_TABLE_SQL = """
select c.oid, c.relname,
       coalesce(array_agg(a.attname::text order by a.attnum)
                filter (where a.attname is not null), '{}') as names,
       coalesce(array_agg(format_type(a.atttypid, a.atttypmod) order by a.attnum)
                filter (where a.attname is not null), '{}') as types,
       coalesce(array_agg(
                  case when a.attidentity <> '' then
                         format('nextval(%L::regclass)',
                                pg_get_serial_sequence(c.oid::regclass::text, a.attname))
                       else pg_get_expr(d.adbin, d.adrelid) end
                  order by a.attnum)
                filter (where a.attname is not null), '{}') as defaults,
       array(select pa.attname::text
               from pg_index i
               join pg_attribute pa on pa.attrelid = i.indrelid and pa.attnum = any(i.indkey)
              where i.indrelid = c.oid and i.indisprimary) as primary_key
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
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
       p.pronargs, p.pronargdefaults, p.proretset, p.provolatile,
       p.prorettype = 'void'::regtype as returns_void,
       rt.typrelid as result_relation
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_type rt on rt.oid = p.prorettype
 where n.nspname = $1 and p.proname = $2 and p.prokind = 'f'
 order by p.oid
"""

_RELATION_COLUMNS_SQL = """
select a.attname::text as name, format_type(a.atttypid, a.atttypmod) as type
  from pg_attribute a
 where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
 order by a.attnum
"""

_FOREIGN_KEYS_SQL = """
select con.conname::text as name,
       sn.nspname::text as schema, sc.relname::text as table_name,
       array(select a.attname::text from unnest(con.conkey) with ordinality as k(n, i)
               join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n
              order by k.i) as columns,
       tn.nspname::text as referenced_schema, tc.relname::text as referenced_table,
       array(select a.attname::text from unnest(con.confkey) with ordinality as k(n, i)
               join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n
              order by k.i) as referenced_columns,
       exists (select from pg_index i
                where i.indrelid = con.conrelid and i.indisunique
                  and i.indnkeyatts = cardinality(con.conkey)
                  and i.indkey::int2[] @> con.conkey) as is_unique
  from pg_constraint con
  join pg_class sc on sc.oid = con.conrelid
  join pg_namespace sn on sn.oid = sc.relnamespace
  join pg_class tc on tc.oid = con.confrelid
  join pg_namespace tn on tn.oid = tc.relnamespace
 where con.contype = 'f' and (con.conrelid = $1 or con.confrelid = $1)
 order by con.conname
"""


async def load_table(conn: asyncpg.Connection, schema: str, name: str) -> Table:
    row = await conn.fetchrow(_TABLE_SQL, schema, name)
    if row is None:
        raise PostgrestError(
            404,
            "PGRST205",
            f"Could not find the table '{schema}.{name}' in the schema cache",
        )
    defaults = {
        column: default
        for column, default in zip(row["names"], row["defaults"], strict=True)
        if default is not None
    }
    return Table(
        schema,
        name,
        dict(zip(row["names"], row["types"], strict=True)),
        tuple(row["primary_key"]),
        defaults,
        row["oid"],
    )


async def load_foreign_keys(conn: asyncpg.Connection, table: Table) -> list[ForeignKey]:
    """Foreign keys from or to ``table``."""
    return [
        ForeignKey(
            row["name"],
            (row["schema"], row["table_name"]),
            tuple(row["columns"]),
            (row["referenced_schema"], row["referenced_table"]),
            tuple(row["referenced_columns"]),
            row["is_unique"],
        )
        for row in await conn.fetch(_FOREIGN_KEYS_SQL, table.oid)
    ]


async def load_function(
    conn: asyncpg.Connection,
    schema: str,
    name: str,
    given: set[str],
    *,
    extra_allowed: bool = False,
) -> Function:
    """The overload of ``schema.name`` whose parameter names fit the given argument names.

    With ``extra_allowed`` (GET, where query parameters are arguments or filters) names that
    are not parameters are allowed; the overload using the most of them wins.
    """
    best: tuple[int, asyncpg.Record, list[str], list[str], list[tuple[str, str]]] | None = None
    for row in await conn.fetch(_FUNCTION_SQL, schema, name):
        modes = row["argmodes"] or ["i"] * len(row["argtypes"])
        names_all = row["argnames"] or [""] * len(modes)
        inputs = [
            (arg_name, arg_type)
            for arg_name, arg_type, mode in zip(names_all, row["argtypes"], modes, strict=False)
            if mode in {"i", "b", "v"}
        ]
        names = [arg_name for arg_name, _ in inputs]
        if any(not arg_name for arg_name in names):
            continue  # unnamed parameters cannot be called by name
        required = set(names[: len(names) - row["pronargdefaults"]])
        fits = required <= given and (extra_allowed or given <= set(names))
        score = len(given & set(names))
        if fits and (best is None or score > best[0]):
            best = (score, row, names_all, modes, inputs)
    if best is not None:
        _, row, names_all, modes, inputs = best
        required = {arg for arg, _ in inputs[: len(inputs) - row["pronargdefaults"]]}
        return Function(
            schema,
            name,
            tuple(inputs),
            frozenset(required),
            row["proretset"],
            row["returns_void"],
            row["provolatile"] == "v",
            await _result_columns(conn, row, names_all, modes),
        )
    arguments = ", ".join(sorted(given))
    raise PostgrestError(
        404,
        "PGRST202",
        f"Could not find the function {schema}.{name}({arguments}) in the schema cache",
        hint="check the function name and the names of its parameters",
    )


async def _result_columns(
    conn: asyncpg.Connection, row: asyncpg.Record, names: list[str], modes: list[str]
) -> dict[str, str] | None:
    outputs = [
        (arg_name, arg_type)
        for arg_name, arg_type, mode in zip(names, row["argtypes"], modes, strict=False)
        if mode in {"o", "b", "t"}
    ]
    if len(outputs) > 1:
        return dict(outputs)
    if row["result_relation"]:
        columns = await conn.fetch(_RELATION_COLUMNS_SQL, row["result_relation"])
        return {column["name"]: column["type"] for column in columns}
    return None
