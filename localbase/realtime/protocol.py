"""Realtime channel rules for one socket, independent of any I/O.

The gateway decodes each text frame, hands it to :meth:`ChannelProtocol.receive` and carries
out the effects it returns, in order: frames to send (now or after the real service's error
delay) and subscription work for the service. Phoenix V1 JSON framing (vsn 1.0.0); the shapes
and texts follow the protocol doc §4.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from localbase.realtime.filters import Condition, FilterError, parse_filter
from localbase.realtime.tokens import TokenError

log = logging.getLogger(__name__)

TOPIC_PREFIX: Final = "realtime:"
EVENTS: Final = frozenset({"INSERT", "UPDATE", "DELETE", "*"})
MAX_CHANNELS_PER_SOCKET: Final = 100
# The real service's defaults (protocol doc §4.15), applied per socket here.
MAX_EVENTS_PER_SECOND: Final = 100
MAX_JOINS_PER_SECOND: Final = 100
PRESENCE_CALLS: Final = 5
PRESENCE_WINDOW_SECONDS: Final = 30.0

Claims = dict[str, Any]
Verify = Callable[[str], Claims]
Clock = Callable[[], float]


class RateWindow:
    """At most ``limit`` events in any ``seconds``-long window (sliding log)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Record one event at ``now``; False when it exceeds the limit."""
        while self._times and now - self._times[0] >= self.seconds:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


class ProtocolError(Exception):
    """A frame that is not Phoenix V1 JSON; the gateway logs and drops it."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One Phoenix message. Server frames always carry ``ref`` (null for pushes), never
    ``join_ref``; client frames may carry ``join_ref``."""

    topic: str
    event: str
    payload: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None
    join_ref: str | None = None

    @classmethod
    def decode(cls, text: str | bytes) -> Frame:
        """Parse a client frame.

        Raises:
            ProtocolError: not JSON, not an object, or topic/event/payload of the wrong type.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProtocolError("frame is not json") from exc
        if not isinstance(data, dict):
            raise ProtocolError("frame is not a json object")
        topic, event, payload = data.get("topic"), data.get("event"), data.get("payload", {})
        if not isinstance(topic, str) or not isinstance(event, str):
            raise ProtocolError("frame lacks a string topic or event")
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise ProtocolError(f"payload of {event!r} is not an object")
        return cls(topic, event, payload, _ref(data.get("ref")), _ref(data.get("join_ref")))

    def encode(self) -> str:
        """Serialize as a server frame: exactly topic, event, payload and ref."""
        return json.dumps(
            {"topic": self.topic, "event": self.event, "payload": self.payload, "ref": self.ref},
            separators=(",", ":"),
        )

    def reply(self, status: str, response: dict[str, Any] | None = None) -> Frame:
        """A ``phx_reply`` to this frame, echoing its ref."""
        payload = {"status": status, "response": response if response is not None else {}}
        return Frame(self.topic, "phx_reply", payload, self.ref)


def _ref(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def system_frame(topic: str, extension: str, status: str, message: str) -> Frame:
    """A ``system`` push; ``channel`` is the topic without its ``realtime:`` prefix."""
    payload = {
        "channel": topic.removeprefix(TOPIC_PREFIX),
        "extension": extension,
        "message": message,
        "status": status,
    }
    return Frame(topic, "system", payload, None)


@dataclass(frozen=True, slots=True)
class Binding:
    """One postgres_changes entry of a join, with the id the client matches by position."""

    id: int
    params: dict[str, Any]  # the client's entry, echoed verbatim in the join reply
    event: str
    schema: str | None
    table: str | None
    filter: str | None
    select: tuple[str, ...] | None
    conditions: tuple[Condition, ...] = ()
    error: str | None = None  # filter/params problem, reported in a system message

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Binding:
        """Build a binding from one ``config.postgres_changes`` entry; never raises."""
        event = str(params.get("event", "*"))
        schema, table = params.get("schema"), params.get("table")
        filter_text = params.get("filter")
        select = params.get("select")
        conditions: tuple[Condition, ...] = ()
        error = None
        try:
            conditions = parse_filter(filter_text if isinstance(filter_text, str) else None)
        except FilterError as exc:
            error = str(exc)
        if schema is None and table is None:
            error = (
                "No subscription params provided. Please provide at least a `schema` or "
                f"`table` to subscribe to: {params}"
            )
        return cls(
            id=binding_id(params),
            params=params,
            event=event.upper() if event.upper() in EVENTS else event,
            schema=str(schema) if schema is not None else None,
            table=str(table) if table is not None else None,
            filter=filter_text if isinstance(filter_text, str) else None,
            select=tuple(str(c) for c in select) if isinstance(select, list) else None,
            conditions=conditions,
            error=error,
        )

    def describe(self) -> str:
        """The real service's parameter summary used in subscription error texts."""
        filters = "[" + ", ".join(c.describe() for c in self.conditions) + "]"
        select = "nil" if self.select is None else json.dumps(list(self.select))
        return (
            f"[event: {self.event}, schema: {self.schema or 'public'}, "
            f"table: {self.table or '*'}, filters: {filters}, select: {select}]"
        )


def binding_id(params: dict[str, Any]) -> int:
    """Deterministic non-zero id per parameter map (the real one is phash2, 0..2^27-1);
    identical entries get identical ids, as upstream."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return zlib.crc32(canonical.encode()) % (2**27 - 1) + 1


@dataclass(eq=False)
class Channel:
    """A topic joined on one socket (one Phoenix channel process upstream)."""

    topic: str
    join_ref: str | None
    bindings: tuple[Binding, ...]
    claims: Claims
    token: str | None
    broadcast_self: bool = False
    broadcast_ack: bool = False
    presence_key: str = ""
    presence_enabled: bool = False
    closed: bool = False
    presence_calls: RateWindow = field(
        default_factory=lambda: RateWindow(PRESENCE_CALLS, PRESENCE_WINDOW_SECONDS)
    )

    @property
    def name(self) -> str:
        return self.topic.removeprefix(TOPIC_PREFIX)

    @property
    def expires_at(self) -> float | None:
        exp = self.claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else None


# Effects returned by ChannelProtocol, carried out by the gateway in order.
@dataclass(frozen=True, slots=True)
class Send:
    frame: Frame
    delay: float = 0.0  # seconds; join errors are held back like the real service's


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Check the channel's bindings, make them live, then push the ``system`` message."""

    channel: Channel


@dataclass(frozen=True, slots=True)
class Joined:
    """A channel joined: register it (broadcast fan-out)."""

    channel: Channel


@dataclass(frozen=True, slots=True)
class Left:
    """A channel is gone (leave, replacement, shutdown, socket closed): forget it."""

    channel: Channel


@dataclass(frozen=True, slots=True)
class Broadcast:
    channel: Channel
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Track:
    """Track the channel's presence ``state``, or untrack it when ``state`` is None."""

    channel: Channel
    state: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class PresenceState:
    """Push the topic's ``presence_state`` to this channel (after its join reply)."""

    channel: Channel


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the socket (the real service closes with 1001 after a join flood)."""

    reason: str


Effect = Send | Joined | Left | Subscribe | Broadcast | Track | PresenceState | Disconnect


class ChannelProtocol:
    """Channels joined by one socket, and the effects each client frame causes.

    Args:
        socket_claims: claims of the socket's ``apikey`` (used for ``sb_`` channel tokens).
        verify: checks a channel token, raising :class:`TokenError` with the real texts.
        error_delay: seconds the real service waits before a join error reply (5 s).
    """

    def __init__(
        self,
        socket_claims: Claims,
        verify: Verify,
        error_delay: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.socket_claims = socket_claims
        self.verify = verify
        self.error_delay = error_delay
        self.clock = clock
        self.channels: dict[str, Channel] = {}
        self._events = RateWindow(MAX_EVENTS_PER_SECOND, 1.0)
        self._joins = RateWindow(MAX_JOINS_PER_SECOND, 1.0)

    def receive(self, frame: Frame) -> list[Effect]:
        """Apply one client frame and return what to do about it."""
        if frame.topic == "phoenix" and frame.event == "heartbeat":
            return [Send(frame.reply("ok"))]
        if frame.event == "phx_join":
            return self._join(frame)
        if frame.event == "phx_leave":
            return self._leave(frame)

        channel = self.channels.get(frame.topic)
        if channel is None:
            return [Send(frame.reply("error", {"reason": "unmatched topic"}))]
        if frame.event == "access_token":
            return self._access_token(channel, frame)
        if frame.event in ("broadcast", "presence") and not self._events.allow(self.clock()):
            return self._shutdown(channel, "Too many messages per second")
        if frame.event == "broadcast":
            effects: list[Effect] = [Broadcast(channel, frame.payload)]
            if channel.broadcast_ack:
                effects.append(Send(frame.reply("ok")))
            return effects
        if frame.event == "presence":
            return self._presence(channel, frame)
        log.debug("ignoring event %r on %s", frame.event, frame.topic)
        return []

    def close(self) -> list[Effect]:
        """The socket went away: drop every channel."""
        effects: list[Effect] = [Left(c) for c in self.channels.values()]
        for channel in self.channels.values():
            channel.closed = True
        self.channels.clear()
        return effects

    def crash_postgres_changes(self) -> list[Effect]:
        """Drop every channel with postgres_changes bindings as a crashed channel process:
        ``phx_error`` with the join ref, so the client rejoins (and its app fetches)."""
        effects: list[Effect] = []
        for channel in [c for c in self.channels.values() if c.bindings]:
            del self.channels[channel.topic]
            channel.closed = True
            effects += [
                Left(channel),
                Send(Frame(channel.topic, "phx_error", {}, channel.join_ref)),
            ]
        return effects

    def next_expiry(self) -> float | None:
        """The earliest ``exp`` (epoch seconds) of the joined channels' tokens."""
        times = [c.expires_at for c in self.channels.values() if c.expires_at is not None]
        return min(times, default=None)

    def expire(self, now: float | None = None) -> list[Effect]:
        """Shut down channels whose token has expired (upstream re-checks at ``exp``)."""
        now = time.time() if now is None else now
        effects: list[Effect] = []
        for channel in list(self.channels.values()):
            expires_at = channel.expires_at
            if expires_at is not None and expires_at <= now:
                message = f"Token has expired {int(now - expires_at)} seconds ago"
                effects += self._shutdown(channel, message)
        return effects

    def _join(self, frame: Frame) -> list[Effect]:
        if not frame.topic.startswith(TOPIC_PREFIX):
            return [Send(frame.reply("error", {"reason": "unmatched topic"}))]
        if frame.topic == TOPIC_PREFIX:
            return self._join_error(frame, "TopicNameRequired: You must provide a topic name")
        if not self._joins.allow(self.clock()):
            reason = "ClientJoinRateLimitReached: Too many joins per second"
            return [Send(frame.reply("error", {"reason": reason})), Disconnect(reason)]
        previous = self.channels.get(frame.topic)
        if previous is None and len(self.channels) >= MAX_CHANNELS_PER_SOCKET:
            return self._join_error(frame, "ChannelRateLimitReached: Too many channels")

        config = frame.payload.get("config")
        config = config if isinstance(config, dict) else {}
        token = frame.payload.get("access_token") or frame.payload.get("user_token")
        try:
            claims, token = self._claims_for(token)
        except TokenError as exc:
            return self._join_error(frame, exc.reason)
        if config.get("private") is True and claims.get("role") != "service_role":
            name = frame.topic.removeprefix(TOPIC_PREFIX)
            # No read policies exist on realtime.messages here, so only service_role passes.
            reason = f"You do not have permissions to read from this Channel topic: {name}"
            return self._join_error(frame, f"Unauthorized: {reason}")

        channel = self._new_channel(frame, config, claims, token)
        effects: list[Effect] = []
        if previous is not None:
            # Upstream Phoenix replaces the old channel process: the new reply goes out
            # first, then phx_close with the old join ref (protocol doc §4.4).
            previous.closed = True
            effects.append(Left(previous))
        self.channels[frame.topic] = channel
        effects.append(Joined(channel))
        echoed = [{**b.params, "id": b.id} for b in channel.bindings]
        effects.append(Send(frame.reply("ok", {"postgres_changes": echoed})))
        if previous is not None:
            effects.append(Send(Frame(frame.topic, "phx_close", {}, previous.join_ref)))
        if channel.presence_enabled:
            effects.append(PresenceState(channel))
        if channel.bindings:
            effects.append(Subscribe(channel))
        return effects

    def _new_channel(
        self, frame: Frame, config: dict[str, Any], claims: Claims, token: str | None
    ) -> Channel:
        entries = config.get("postgres_changes")
        entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
        broadcast = config.get("broadcast")
        broadcast = broadcast if isinstance(broadcast, dict) else {}
        presence = config.get("presence")
        presence = presence if isinstance(presence, dict) else {}
        return Channel(
            topic=frame.topic,
            join_ref=frame.join_ref or frame.ref,
            bindings=tuple(Binding.from_params(e) for e in entries),
            claims=claims,
            token=token,
            broadcast_self=broadcast.get("self") is True,
            broadcast_ack=broadcast.get("ack") is True,
            presence_key=str(presence.get("key") or uuid.uuid4()),
            presence_enabled=presence.get("enabled") is True,
        )

    def _claims_for(self, token: Any) -> tuple[Claims, str | None]:
        """A channel token's claims; none or an ``sb_`` key means the socket's key."""
        if not isinstance(token, str) or token.startswith("sb_"):
            return self.socket_claims, None
        return self.verify(token), token

    def _join_error(self, frame: Frame, reason: str) -> list[Effect]:
        return [Send(frame.reply("error", {"reason": reason}), delay=self.error_delay)]

    def _leave(self, frame: Frame) -> list[Effect]:
        channel = self.channels.pop(frame.topic, None)
        if channel is None:
            return [Send(frame.reply("ok"))]
        channel.closed = True
        return [
            Left(channel),
            Send(frame.reply("ok")),
            Send(Frame(frame.topic, "phx_close", {}, channel.join_ref)),
        ]

    def _access_token(self, channel: Channel, frame: Frame) -> list[Effect]:
        # Never answered, whatever happens (protocol doc §4.10).
        token = frame.payload.get("access_token")
        if not isinstance(token, str) or token.startswith("sb_") or token == channel.token:
            return []
        try:
            claims = self.verify(token)
        except TokenError as exc:
            return self._shutdown(channel, exc.message)
        channel.claims, channel.token = claims, token
        return [Subscribe(channel)] if channel.bindings else []

    def _presence(self, channel: Channel, frame: Frame) -> list[Effect]:
        """``track`` / ``untrack`` (protocol doc §4.13); 5 calls per 30 s, then shutdown."""
        if not channel.presence_calls.allow(self.clock()):
            return self._shutdown(channel, "Client presence rate limit exceeded")
        event = frame.payload.get("event")
        if event == "track":
            state = frame.payload.get("payload")
            if not isinstance(state, dict):
                reason = "Presence track payload must be a map"
                return [Send(frame.reply("error", {"reason": reason}))]
            channel.presence_enabled = True
            return [Send(frame.reply("ok")), Track(channel, state)]
        if event == "untrack":
            return [Send(frame.reply("ok")), Track(channel, None)]
        return [Send(frame.reply("error", {"reason": f"unknown presence event {event!r}"}))]

    def _shutdown(self, channel: Channel, message: str) -> list[Effect]:
        self.channels.pop(channel.topic, None)
        channel.closed = True
        return [
            Left(channel),
            Send(system_frame(channel.topic, "system", "error", message)),
            Send(Frame(channel.topic, "phx_close", {}, channel.join_ref)),
        ]
