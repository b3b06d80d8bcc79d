"""Presence per topic: who tracks what, as ``presence_state`` and ``presence_diff`` payloads.

Each channel tracks at most one state under its presence key (``config.presence.key`` or a
server-made UUID). Every meta carries a fresh ``phx_ref`` (the Python client pops it and dies
on a meta without one, protocol doc §4.13), plus ``phx_ref_prev`` when it replaces an older
meta of the same channel.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any

from localbase.realtime.protocol import Channel

Metas = dict[str, dict[str, list[dict[str, Any]]]]  # key -> {"metas": [meta, ...]}


@dataclass(slots=True)
class _Tracked:
    key: str
    meta: dict[str, Any]


class PresenceRegistry:
    """Tracked presences of every topic on this server."""

    def __init__(self) -> None:
        self._topics: dict[str, dict[Channel, _Tracked]] = {}
        self._refs = itertools.count(1)
        self._prefix = secrets.token_urlsafe(6)

    def state(self, topic: str) -> Metas:
        """The ``presence_state`` payload: every tracked meta of the topic, grouped by key."""
        result: Metas = {}
        for tracked in self._topics.get(topic, {}).values():
            result.setdefault(tracked.key, {"metas": []})["metas"].append(tracked.meta)
        return result

    def track(self, channel: Channel, state: dict[str, Any]) -> dict[str, Metas]:
        """Track (or replace) the channel's state; returns the ``presence_diff`` payload."""
        members = self._topics.setdefault(channel.topic, {})
        previous = members.get(channel)
        meta = {**state, "phx_ref": self._new_ref()}
        leaves: Metas = {}
        if previous is not None:
            meta["phx_ref_prev"] = previous.meta["phx_ref"]
            leaves = {previous.key: {"metas": [previous.meta]}}
        members[channel] = _Tracked(channel.presence_key, meta)
        return {"joins": {channel.presence_key: {"metas": [meta]}}, "leaves": leaves}

    def untrack(self, channel: Channel) -> dict[str, Metas] | None:
        """Forget the channel's state; the diff to send, or None when it tracked nothing."""
        members = self._topics.get(channel.topic)
        tracked = members.pop(channel, None) if members is not None else None
        if members is not None and not members:
            del self._topics[channel.topic]
        if tracked is None:
            return None
        return {"joins": {}, "leaves": {tracked.key: {"metas": [tracked.meta]}}}

    def _new_ref(self) -> str:
        return f"{self._prefix}{next(self._refs)}"
