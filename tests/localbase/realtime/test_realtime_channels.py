"""Broadcast, presence, token expiry and bad frames through the official client (issue 3, 5)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets
from realtime.types import RealtimeAcknowledgementStatus

from tests.localbase.realtime.test_realtime_integration import (
    WAIT,
    Watch,
    new_task,
    set_progress,
    watch,
    ws_url,
)

pytestmark = pytest.mark.integration


async def until(condition, within: float = WAIT) -> None:
    """Poll ``condition`` every 20 ms for at most ``within`` seconds."""
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


async def test_broadcast_reaches_others_and_self_only_when_asked(clients) -> None:
    alice, bob = await clients(), await clients()
    got_alice: list[dict] = []
    got_bob: list[dict] = []
    acks: list[Any] = []
    sender = alice.channel("room-b", {"config": {"broadcast": {"self": True, "ack": True}}})
    sender.on_broadcast("ping", got_alice.append)
    listener = bob.channel("room-b").on_broadcast("ping", got_bob.append)
    await sender.subscribe()
    await listener.subscribe()
    await asyncio.sleep(0.1)

    push = await sender.push(
        "broadcast", {"type": "broadcast", "event": "ping", "payload": {"n": 1}}
    )
    push.receive(RealtimeAcknowledgementStatus.Ok, acks.append)

    await until(lambda: got_alice and got_bob and acks)
    assert got_bob[0]["payload"] == {"n": 1} and got_alice[0]["payload"] == {"n": 1}
    assert len(acks) == 1


async def test_presence_sync_join_and_leave_between_two_users(clients) -> None:
    alice, bob = await clients(), await clients()
    joins: list[str] = []
    leaves: list[str] = []
    seen_by_bob = bob.channel("room-p", {"config": {"presence": {"key": "bob"}}})
    seen_by_bob.on_presence_join(lambda key, current, new: joins.append(key))
    seen_by_bob.on_presence_leave(lambda key, current, left: leaves.append(key))
    await seen_by_bob.subscribe()
    tracker = alice.channel("room-p", {"config": {"presence": {"key": "alice"}}})
    tracker.on_presence_sync(lambda: None)
    await tracker.subscribe()
    await asyncio.sleep(0.1)

    await tracker.track({"user": "alice", "online_at": 1})
    await until(lambda: "alice" in seen_by_bob.presence_state())
    (meta,) = seen_by_bob.presence_state()["alice"]
    assert meta["user"] == "alice" and meta["presence_ref"]
    await until(lambda: "alice" in tracker.presence_state())  # the tracker sees itself

    await alice.realtime.remove_channel(tracker)
    await until(lambda: "alice" in leaves)
    assert joins == ["alice"] and seen_by_bob.presence_state() == {}

    # bob's receive loop is still alive: a later broadcast still arrives
    got: list[dict] = []
    seen_by_bob.on_broadcast("after", got.append)
    other = alice.channel("room-p")
    await other.subscribe()
    await asyncio.sleep(0.1)
    await other.send_broadcast("after", {"ok": True})
    await until(lambda: bool(got))


async def test_expired_channel_token_gets_system_error_then_close(localbase, clients) -> None:
    service, alice = await clients(service=True), await clients()
    task = await new_task(alice)
    user_id = (await alice.auth.get_user()).user.id
    short, _ = localbase.keys.mint_access_token(user_id, str(uuid.uuid4()), lifetime=2)
    await alice.realtime.set_auth(short)
    seen = await watch(alice, "short-lived", filter=f"id=eq.{task['id']}")

    await seen.until(lambda: "CLOSED" in seen.states, within=6)

    assert seen.states[-2:] == ["CHANNEL_ERROR", "CLOSED"]
    assert json.loads(seen.errors[-1])["message"].startswith("Token has expired")
    await set_progress(service, task["id"], 1)
    await asyncio.sleep(0.2)
    assert seen.events == []


async def test_refreshed_token_keeps_the_channel_alive_past_the_old_expiry(
    localbase, clients
) -> None:
    service, alice = await clients(service=True), await clients()
    task = await new_task(alice)
    user_id = (await alice.auth.get_user()).user.id
    short, _ = localbase.keys.mint_access_token(user_id, str(uuid.uuid4()), lifetime=2)
    await alice.realtime.set_auth(short)
    seen = await watch(alice, "refreshed", filter=f"id=eq.{task['id']}")
    seen.system.clear()

    fresh, _ = localbase.keys.mint_access_token(user_id, str(uuid.uuid4()), lifetime=600)
    await alice.realtime.set_auth(fresh)
    await asyncio.wait_for(seen.system.wait(), WAIT)  # re-subscribed with the new claims
    await asyncio.sleep(2.2)
    await set_progress(service, task["id"], 9)

    await seen.wait_for(1)
    assert seen.progress() == [9]
    assert "CLOSED" not in seen.states and "CHANNEL_ERROR" not in seen.states


async def test_huge_frame_closes_only_that_socket(localbase, clients) -> None:
    service, alice = await clients(service=True), await clients()
    task = await new_task(alice)
    seen: Watch = await watch(alice, "bystander", filter=f"id=eq.{task['id']}")
    url = ws_url(localbase, localbase.keys.anon_key)

    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("x" * 5_000_001)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    await set_progress(service, task["id"], 4)
    await seen.wait_for(1)
    assert seen.progress() == [4]


async def test_schema_the_role_cannot_use_delivers_nothing_and_breaks_nothing(
    localbase, clients
) -> None:
    import asyncpg

    from localbase.database import parse_dsn

    conn = await asyncpg.connect(**parse_dsn(localbase.postgres.dsn))
    try:
        await conn.execute(
            "create schema if not exists hidden;"
            "create table if not exists hidden.notes (id int primary key, body text);"
            "revoke all on schema hidden from anon, authenticated;"
            "alter table hidden.notes enable row level security;"
            "do $$ begin alter publication supabase_realtime add table hidden.notes;"
            " exception when duplicate_object then null; end $$;"
        )
        service, alice = await clients(service=True), await clients()
        task = await new_task(alice)
        hidden = await watch(alice, "hidden", event="*", table="notes", schema="hidden")
        mine = await watch(alice, "mine", filter=f"id=eq.{task['id']}")

        await conn.execute("insert into hidden.notes values (1, 'secret')")
        await set_progress(service, task["id"], 8)

        await mine.wait_for(1)
        await asyncio.sleep(0.2)
        assert hidden.events == [] and mine.progress() == [8]
    finally:
        await conn.execute("alter publication supabase_realtime drop table hidden.notes")
        await conn.execute("drop schema hidden cascade")
        await conn.close()


@pytest.fixture
async def items(localbase) -> Any:
    """A published RLS table with REPLICA IDENTITY FULL and assorted types; dropped after."""
    import asyncpg

    from localbase.database import parse_dsn

    conn = await asyncpg.connect(**parse_dsn(localbase.postgres.dsn))
    await conn.execute(
        "create table public.rt_items (id int primary key, owner uuid not null, label text,"
        " amount numeric, tags text[], blob bytea, at timestamptz, doc jsonb);"
        "alter table public.rt_items replica identity full;"
        "alter table public.rt_items enable row level security;"
        "create policy own on public.rt_items for select using (owner = auth.uid());"
        "grant select on public.rt_items to anon, authenticated;"
        "alter publication supabase_realtime add table public.rt_items;"
    )
    try:
        yield conn
    finally:
        await conn.execute("drop table public.rt_items")
        await conn.close()


async def test_full_identity_typed_values_select_lists_and_filtered_deletes(items, clients) -> None:
    alice = await clients()
    owner = (await alice.auth.get_user()).user.id
    everything = await watch(alice, "items-all", event="*", table="rt_items")
    slim = await watch(alice, "items-slim", event="UPDATE", table="rt_items", select=["label"])
    deletes = await watch(
        alice, "items-del", event="DELETE", table="rt_items", filter="label=like.gone%"
    )

    await items.execute(
        "insert into rt_items values (1, $1, 'first', 12.50, '{a,\"b c\"}', '\\xdead',"
        " '2025-01-15 10:20:30.5+00', '{\"k\": [1, 2]}')",
        owner,
    )
    # RLS re-reads the row, so it must still exist when checked: wait (generously, CI is slow)
    await everything.until(lambda: len(everything.events) >= 1, within=15)
    await items.execute("update rt_items set label = 'gone soon' where id = 1")
    await items.execute("insert into rt_items (id, owner, label) values (2, $1, 'kept')", owner)
    await everything.until(lambda: len(everything.events) >= 3, within=15)
    await items.execute("delete from rt_items")

    await everything.wait_for(5)
    await deletes.wait_for(1)
    insert, update = everything.events[0]["data"], everything.events[1]["data"]
    assert insert["record"] == {
        "id": 1,
        "owner": owner,
        "label": "first",
        "amount": 12.5,
        "tags": ["a", "b c"],
        "blob": "dead",
        "at": "2025-01-15T10:20:30.5+00:00",
        "doc": {"k": [1, 2]},
    }
    assert update["old_record"]["label"] == "first" and update["record"]["label"] == "gone soon"
    assert [e["data"]["type"] for e in everything.events] == [
        "INSERT", "UPDATE", "INSERT", "DELETE", "DELETE"
    ]  # fmt: skip
    # DELETE on an RLS table: primary key only, even with REPLICA IDENTITY FULL
    assert everything.events[3]["data"]["old_record"] == {"id": 1}
    (slim_update,) = slim.events
    assert slim_update["data"]["record"] == {"id": 1, "label": "gone soon"}
    assert [c["name"] for c in slim_update["data"]["columns"]] == ["id", "label"]
    assert [e["data"]["old_record"] for e in deletes.events] == [{"id": 1}]


async def test_oversized_row_is_sent_with_small_values_and_error_413(items, clients) -> None:
    alice = await clients()
    owner = (await alice.auth.get_user()).user.id
    seen = await watch(alice, "items-big", event="INSERT", table="rt_items")

    await items.execute(
        "insert into rt_items (id, owner, label, doc) values (3, $1, 'big', $2::jsonb)",
        owner,
        json.dumps({"blob": "x" * 1_100_000}),
    )

    (event,) = await seen.wait_for(1)
    data = event["data"]
    assert data["errors"] == ["Error 413: Payload Too Large"]
    assert data["record"] == {"id": 3, "owner": owner, "label": "big", "amount": None,
                              "tags": None, "blob": None, "at": None}  # fmt: skip
