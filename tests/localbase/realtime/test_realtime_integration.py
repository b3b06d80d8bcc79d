"""Realtime through the unmodified official clients against a real localbase.

Each user signs in anonymously and then calls ``realtime.set_auth(token)`` before subscribing:
the client only *schedules* that call after sign-in, so a channel joined in the same tick would
carry the anon key (protocol doc §1.3). Writes wait for the "Subscribed to PostgreSQL" system
message, after which every commit must be delivered (§4.6).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from supabase import AsyncClient

from localbase.server import LocalbaseThread

pytestmark = pytest.mark.integration

WAIT = 15.0  # waits end as soon as their condition holds; generous for loaded machines


@dataclass
class Watch:
    """A subscribed channel and everything it received."""

    channel: Any
    events: list[dict[str, Any]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    system: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, payload: dict[str, Any]) -> None:
        self.events.append(payload)
        self.changed.set()

    async def until(self, done: Callable[[], bool], within: float = WAIT) -> None:
        """Wait until ``done()`` holds or ``within`` seconds pass (the asserts say which)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not done():
                    await self.changed.wait()
                    self.changed.clear()

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        await self.until(lambda: len(self.events) >= count)
        return self.events

    def progress(self) -> list[int]:
        return [e["data"]["record"]["progress"] for e in self.events]


async def new_task(client: AsyncClient) -> dict[str, Any]:
    response = await client.table("tasks").insert({"kind": "demo", "params": {}}).execute()
    return response.data[0]


async def watch(
    client: AsyncClient,
    name: str,
    *,
    event: str = "UPDATE",
    table: str = "tasks",
    wait_system: bool = True,
    **binding: Any,
) -> Watch:
    channel = client.channel(name)
    result = Watch(channel)
    channel.on_postgres_changes(event, result.on_event, table=table, **binding)
    channel.on_system(lambda payload: result.system.set())

    def on_state(state: Any, error: Exception | None) -> None:
        result.states.append(state.value)
        if error is not None:
            result.errors.append(str(error))
        result.changed.set()

    await channel.subscribe(on_state)
    if wait_system:
        await asyncio.wait_for(result.system.wait(), WAIT)
    return result


async def set_progress(service: AsyncClient, task_id: str, progress: int) -> None:
    await service.table("tasks").update({"progress": progress}).eq("id", task_id).execute()


async def test_each_user_gets_live_updates_of_own_task_in_commit_order(clients) -> None:
    service, alice, bob = await clients(service=True), await clients(), await clients()
    task_a, task_b = await new_task(alice), await new_task(bob)
    watch_a = await watch(alice, "a", filter=f"id=eq.{task_a['id']}")
    watch_b = await watch(bob, "b", filter=f"id=eq.{task_b['id']}")

    for step in range(1, 6):
        await set_progress(service, task_a["id"], step * 10)
        await set_progress(service, task_b["id"], step * 10 + 1)

    await watch_a.wait_for(5)
    await watch_b.wait_for(5)
    assert watch_a.progress() == [10, 20, 30, 40, 50]
    assert watch_b.progress() == [11, 21, 31, 41, 51]
    assert {e["data"]["record"]["id"] for e in watch_a.events} == {task_a["id"]}


async def test_postgres_changes_frame_has_the_real_shape(clients) -> None:
    service, alice = await clients(service=True), await clients()
    task = await new_task(alice)
    seen = await watch(alice, "shape", filter=f"id=eq.{task['id']}")

    await set_progress(service, task["id"], 42)

    (event,) = await seen.wait_for(1)
    data = event["data"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["commit_timestamp"])
    assert (data["schema"], data["table"], data["type"], data["errors"]) == (
        "public",
        "tasks",
        "UPDATE",
        None,
    )
    assert {"name": "progress", "type": "int2"} in data["columns"]
    assert {"name": "params", "type": "jsonb"} in data["columns"]
    assert data["record"]["progress"] == 42 and data["record"]["params"] == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", data["record"]["updated_at"])
    assert data["old_record"] == {"id": task["id"]}
    assert event["ids"] == [seen.channel.postgres_changes_callbacks[0].id]


async def test_write_right_after_the_system_message_is_delivered(clients) -> None:
    service, alice = await clients(service=True), await clients()
    task = await new_task(alice)
    channel = alice.channel("race")
    seen = Watch(channel)
    written: list[asyncio.Task] = []
    channel.on_postgres_changes(
        "UPDATE", seen.on_event, table="tasks", filter=f"id=eq.{task['id']}"
    )
    channel.on_system(
        lambda _: written.append(asyncio.create_task(set_progress(service, task["id"], 7)))
    )

    await channel.subscribe()

    await seen.wait_for(1)
    await asyncio.gather(*written)
    assert seen.progress() == [7]


async def test_rls_hides_another_users_task_even_when_subscribed_by_id(clients) -> None:
    service, alice, mallory = await clients(service=True), await clients(), await clients()
    task = await new_task(alice)
    owner = await watch(alice, "owner", filter=f"id=eq.{task['id']}")
    spy = await watch(mallory, "spy", filter=f"id=eq.{task['id']}")
    spy_all = await watch(mallory, "spy-all", event="*")

    await set_progress(service, task["id"], 99)

    assert len(await owner.wait_for(1)) == 1
    await asyncio.sleep(0.3)
    assert spy.events == [] and spy_all.events == []


async def test_filters_isolate_rows_of_the_same_user(clients) -> None:
    service, alice = await clients(service=True), await clients()
    first, second = await new_task(alice), await new_task(alice)
    only_first = await watch(alice, "first", filter=f"id=eq.{first['id']}")
    everything = await watch(alice, "all")

    await set_progress(service, second["id"], 5)
    await set_progress(service, first["id"], 6)

    await everything.wait_for(2)
    await only_first.wait_for(1)
    await asyncio.sleep(0.2)
    assert [e["data"]["record"]["id"] for e in everything.events] == [second["id"], first["id"]]
    assert [e["data"]["record"]["id"] for e in only_first.events] == [first["id"]]


async def test_insert_and_delete_events_carry_record_or_old_record(clients) -> None:
    service, alice = await clients(service=True), await clients()
    inserts = await watch(alice, "inserts", event="INSERT")
    deletes = await watch(alice, "deletes", event="DELETE")

    task = await new_task(alice)
    (inserted,) = await inserts.wait_for(1)
    await service.table("tasks").delete().eq("id", task["id"]).execute()
    (deleted,) = await deletes.wait_for(1)

    assert inserted["data"]["record"]["id"] == task["id"]
    assert "old_record" not in inserted["data"]
    assert deleted["data"]["old_record"] == {"id": task["id"]}
    assert "record" not in deleted["data"]


async def test_removing_the_channel_stops_delivery(clients) -> None:
    service, alice = await clients(service=True), await clients()
    task = await new_task(alice)
    removed = await watch(alice, "removed", filter=f"id=eq.{task['id']}")
    control = await watch(service, "control", filter=f"id=eq.{task['id']}")

    await alice.realtime.remove_channel(removed.channel)
    await set_progress(service, task["id"], 3)

    assert len(await control.wait_for(1)) == 1
    await asyncio.sleep(0.2)
    assert removed.events == []


async def test_table_outside_the_publication_gets_a_system_error(clients) -> None:
    alice = await clients()

    seen = await watch(alice, "results", table="task_results", wait_system=False)
    await seen.until(lambda: "CLOSED" in seen.states)

    # Real sequence: SUBSCRIBED, CHANNEL_ERROR (system error), rejoin after 1 s, SUBSCRIBED,
    # CLOSED (the duplicate join closes the old join ref, which the client takes as its own).
    assert seen.states[:2] == ["SUBSCRIBED", "CHANNEL_ERROR"]
    assert "CLOSED" in seen.states
    assert "Please check Realtime is enabled" in seen.errors[0]


async def test_bad_filter_gets_the_real_parse_error(clients) -> None:
    alice = await clients()

    seen = await watch(alice, "bad", filter="id=foo.1", wait_system=False)
    await seen.until(lambda: bool(seen.errors))

    assert json.loads(seen.errors[0])["message"] == 'Error parsing `filter` params: ["foo", "1"]'


def ws_url(localbase: LocalbaseThread, key: str) -> str:
    return (
        localbase.url.replace("http://", "ws://") + f"/realtime/v1/websocket?apikey={key}&vsn=1.0.0"
    )


async def test_malformed_frames_do_not_close_the_socket(localbase) -> None:
    async with websockets.connect(ws_url(localbase, localbase.keys.anon_key)) as ws:
        for garbage in ("nope", "[]", '{"topic": 1}', '{"topic":"t","event":"e","payload":[]}'):
            await ws.send(garbage)
        await ws.send('{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null}')

        reply = json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    assert reply == {
        "topic": "phoenix",
        "event": "phx_reply",
        "payload": {"status": "ok", "response": {}},
        "ref": None,
    }


async def test_publishable_key_opens_a_socket(localbase) -> None:
    async with websockets.connect(ws_url(localbase, localbase.keys.publishable_key)) as ws:
        await ws.send('{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null}')
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["event"] == "phx_reply"


async def test_bad_api_key_is_refused_with_401_and_the_real_body(localbase) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(ws_url(localbase, "not-a-jwt")):
            pass

    response = refused.value.response
    assert response.status_code == 401
    assert json.loads(response.body) == {"error": "The token provided is not a valid JWT"}


async def test_expired_token_join_is_refused_with_the_real_reason(localbase) -> None:
    expired, _ = localbase.keys.mint_access_token("u", "s", lifetime=-20)
    join = {
        "topic": "realtime:x",
        "event": "phx_join",
        "ref": "1",
        "join_ref": "1",
        "payload": {"config": {"postgres_changes": []}, "access_token": expired},
    }
    async with websockets.connect(ws_url(localbase, localbase.keys.anon_key)) as ws:
        await ws.send(json.dumps(join))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))

    reason = reply["payload"]["response"]["reason"]
    assert reply["payload"]["status"] == "error" and reply["ref"] == "1"
    assert re.fullmatch(r"InvalidJWTToken: Token has expired (19|20|21|22) seconds ago", reason)
