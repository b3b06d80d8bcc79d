"""Regenerate data/pgoutput_capture.json from a live server (not a test; run by hand).

    uv run python tests/localbase/realtime/capture_pgoutput.py "host=/path/to/socket user=postgres"

The server needs ``wal_level=logical``. The script creates a scratch schema, streams its
changes through a temporary pgoutput slot and stores, for each committed transaction, the raw
messages (hex) next to what ``to_jsonb`` says about the same rows, so the decoder tests can
compare against PostgreSQL itself without a server.
"""

from __future__ import annotations

import json
import select
import sys
from pathlib import Path

import psycopg2
import psycopg2.extras

SETUP = """
drop schema if exists capture cascade;
drop publication if exists capture_pub;
create schema capture;
create type capture.mood as enum ('happy', 'sad');
create domain capture.short_text as text check (length(value) < 20);
create table capture.everything (
    id int8 primary key, flag bool, small int2, regular int4, amount numeric, ratio float8,
    half float4, label text, code varchar(10), padded char(3), uid uuid, meta jsonb, doc json,
    at timestamptz, local_at timestamp, day date, clock time, clock_tz timetz,
    span interval, raw bytea, tags text[], grid int4[], feeling capture.mood,
    nick capture.short_text, nothing text
);
create table capture.plain (id int4 primary key, note text);
alter table capture.plain replica identity full;
create table capture.toasty (id int4 primary key, big text, n int4);
alter table capture.toasty alter column big set storage external;
create publication capture_pub for table capture.everything, capture.plain, capture.toasty;
"""

TRANSACTIONS = [
    """insert into capture.everything values (
        1, true, -3, 42, 12.50, 3.25, 0.5, 'hé "quoted", {braced}', 'abc', 'x',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1, "b": [true, null]}', '{"k":  "v"}',
        '2025-01-15 10:20:30.123456+00', '2025-01-15 10:20:30.5', '2025-01-15', '10:20:30',
        '10:20:30+02', '1 day 02:00:00', '\\x0102ff', '{a,"b c",NULL,"d\\"e"}',
        '{{1,2},{3,4}}', 'happy', 'nick', null)""",
    """insert into capture.everything (id, at, amount, ratio, half) values
        (2, '2025-06-01 00:00:00+05:30', 'NaN', 'Infinity', '-Infinity')""",
    "update capture.everything set regular = 43, label = 'new' where id = 1",
    "insert into capture.plain values (7, 'first'); update capture.plain set note = 'second'",
    "delete from capture.plain where id = 7",
    "delete from capture.everything where id = 2",
    "truncate capture.plain",
    "insert into capture.toasty values (1, repeat('x', 5000), 1); update capture.toasty set n = 2",
]


def main(dsn: str) -> None:
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("set timezone = 'UTC'")
        cur.execute(SETUP)

    replication = psycopg2.connect(
        dsn,
        connection_factory=psycopg2.extras.LogicalReplicationConnection,
        options="-c TimeZone=UTC -c DateStyle=ISO",
    )
    stream = replication.cursor()
    stream.execute("CREATE_REPLICATION_SLOT capture_slot TEMPORARY LOGICAL pgoutput")
    stream.start_replication(
        slot_name="capture_slot",
        decode=False,
        options={"proto_version": "1", "publication_names": "capture_pub"},
    )

    captured = []
    with admin.cursor() as cur:
        for sql in TRANSACTIONS:
            cur.execute(sql)
            cur.execute("select id, to_jsonb(e) from capture.everything e order by id")
            rows = {str(k): v for k, v in cur.fetchall()}
            captured.append({"sql": " ".join(sql.split()), "messages": [], "rows_after": rows})

    pending = iter(captured)
    current = next(pending)
    while True:
        message = stream.read_message()
        if message is None:
            select.select([stream], [], [], 2.0)
            continue
        payload = bytes(message.payload)
        current["messages"].append(payload.hex())
        stream.send_feedback(flush_lsn=message.data_start)
        if payload[:1] == b"C":
            current = next(pending, None)
            if current is None:
                break

    with admin.cursor() as cur:
        cur.execute(
            "select oid::int8, typname::text, typtype::text, typelem::int8, typbasetype::int8,"
            " typcategory::text, typdelim::text from pg_type t"
            " where typnamespace = 'capture'::regnamespace"
        )
        types = [list(row) for row in cur.fetchall()]
        cur.execute("drop schema capture cascade; drop publication capture_pub")

    out = Path(__file__).parent / "data" / "pgoutput_capture.json"
    out.write_text(json.dumps({"types": types, "transactions": captured}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
