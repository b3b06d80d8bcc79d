"""A fake realtime client and channel that behave like the official ones where it matters.

The fake lets a test decide when each subscription state arrives, records the order of
subscribes and fetches, and tracks which channels are still registered on the client.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from realtime.types import RealtimeSubscribeStates

from services.models import Task

BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


def row(task_id: str, version: int, **columns: Any) -> dict[str, Any]:
    """A tasks row whose `updated_at` grows with `version`."""
    values: dict[str, Any] = {
        "id": task_id,
        "user_id": "user-1",
        "kind": "demo",
        "params": {"steps": 5},
        "status": "pending",
        "progress": 0,
        "updated_at": (BASE_TIME + timedelta(seconds=version)).isoformat(),
    }
    values.update(columns)
    return values


class FakeChannel:
    def __init__(self, client: FakeClient, topic: str) -> None:
        self.client = client
        self.topic = topic
        self.bindings: list[dict[str, Any]] = []
        self.change_callbacks: list[Any] = []
        self.system_callbacks: list[Any] = []
        self.state_callback: Any = None
        self.removed = False
        self.join_released = asyncio.Event()

    def on_postgres_changes(self, event: str, callback: Any, **binding: Any) -> FakeChannel:
        self.bindings.append({"event": event, **binding})
        self.change_callbacks.append(callback)
        return self

    def on_system(self, callback: Any) -> FakeChannel:
        self.system_callbacks.append(callback)
        return self

    async def subscribe(self, callback: Any) -> FakeChannel:
        self.state_callback = callback
        self.client.log.append(f"subscribe {self.topic}")
        if self.client.hold_joins:
            await self.join_released.wait()
        return self

    def emit_state(self, state: str, error: Exception | None = None) -> None:
        self.state_callback(RealtimeSubscribeStates(state), error)

    def emit_update(self, record: dict[str, Any]) -> None:
        payload = {
            "ids": [1],
            "data": {"type": "UPDATE", "table": "tasks", "schema": "public", "record": record},
        }
        for callback in self.change_callbacks:
            callback(payload)

    def emit_system_ok(self) -> None:
        payload = {"extension": "postgres_changes", "status": "ok", "message": "Subscribed"}
        for callback in self.system_callbacks:
            callback(payload)


class FakeClient:
    def __init__(self) -> None:
        self.channels: dict[str, FakeChannel] = {}
        self.created: list[FakeChannel] = []
        self.log: list[str] = []
        self.hold_joins = False

    def channel(self, topic: str) -> FakeChannel:
        assert topic not in self.channels, "topic reused while its channel is registered"
        channel = FakeChannel(self, f"realtime:{topic}")
        self.channels[topic] = channel
        self.created.append(channel)
        return channel

    async def remove_channel(self, channel: FakeChannel) -> None:
        await asyncio.sleep(0)  # the real client sends phx_leave here
        channel.removed = True
        channel.join_released.set()
        self.channels = {t: c for t, c in self.channels.items() if c is not channel}
        self.log.append(f"remove {channel.topic}")
        if channel.state_callback is not None:
            channel.emit_state("CLOSED")  # the leave reply closes the channel

    @property
    def live(self) -> list[FakeChannel]:
        return list(self.channels.values())


class FakeSource:
    """Stands in for SupabaseSession: the fake client plus rows served by `fetch`."""

    def __init__(self) -> None:
        self.client = FakeClient()
        self.rows: dict[str, dict[str, Any]] = {}
        self.fetches: list[str] = []
        self.fetch_gate: asyncio.Event | None = None

    async def fetch(self, task_id: str) -> Task | None:
        self.client.log.append(f"fetch {task_id}")
        self.fetches.append(task_id)
        snapshot = self.rows.get(task_id)
        if self.fetch_gate is not None:
            await self.fetch_gate.wait()
        return Task.model_validate(snapshot) if snapshot else None
