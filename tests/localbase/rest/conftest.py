"""A small fixed data set in ``public`` for the PostgREST surface tests (no RLS, own names)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest

from localbase.server import LocalbaseThread

SCHEMA_SQL = r"""
drop table if exists public.lbtest_children, public.lbtest_items cascade;
create table public.lbtest_items (
  id int primary key,
  name text not null unique,
  n int,
  tags text[] not null default '{}',
  data jsonb,
  flag boolean,
  note text default 'fresh',
  rng int4range,
  body text
);
create table public.lbtest_children (
  id serial primary key,
  item_id int references public.lbtest_items (id) on delete cascade,
  label text not null
);
insert into public.lbtest_items values
  (1, 'apple', 3, '{red,fruit}', '{"k": 1, "nested": {"x": "a"}}', true, null, '[1,5)',
   'the quick brown fox'),
  (2, 'banana', 5, '{yellow,fruit}', '{"k": 2}', false, 'ripe', '[5,10)', 'lazy dogs sleep'),
  (3, 'carrot', null, '{orange,veg}', null, null, 'crunchy', null, 'quick carrots'),
  (4, 'date', 8, '{}', '{"k": 3}', true, null, '[2,3)', null),
  (5, 'Eggplant', 1, '{purple,veg}', '{"k": "x"}', false, 'big', 'empty', 'brown eggs');
insert into public.lbtest_children (item_id, label) values (1, 'a1'), (1, 'a2'), (2, 'b1');

create or replace function public.lbtest_over(min_n int) returns setof public.lbtest_items
  language sql stable as $$ select * from public.lbtest_items where n > min_n $$;
create or replace function public.lbtest_add(a int, b int default 1) returns int
  language sql immutable as $$ select a + b $$;
create or replace function public.lbtest_touch(p_id int) returns void
  language sql as $$ update public.lbtest_items set note = 'touched' where id = p_id $$;
create or replace function public.lbtest_pairs() returns table (x int, y text)
  language sql stable as $$ values (1, 'a'), (2, 'b'), (3, 'c') $$;
create or replace function public.lbtest_names() returns setof text
  language sql stable as $$ select name from public.lbtest_items order by id $$;
create or replace function public.lbtest_first() returns public.lbtest_items
  language sql stable as $$ select * from public.lbtest_items where id = 1 $$;
"""


@pytest.fixture(scope="module")
def items(localbase: LocalbaseThread) -> Iterator[None]:
    """(Re)create ``lbtest_items`` (5 rows), ``lbtest_children`` (3 rows) and functions."""
    with psycopg2.connect(localbase.postgres.dsn) as conn, conn.cursor() as cursor:
        cursor.execute(SCHEMA_SQL)
    conn.close()
    yield
