"""The channel protocol without sockets: frames in, effects out (protocol doc §4)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localbase.realtime.protocol import (
    Binding,
    Broadcast,
    ChannelProtocol,
    Disconnect,
    Frame,
    Joined,
    Left,
    ProtocolError,
    Send,
    Subscribe,
    Track,
    system_frame,
)
from localbase.realtime.tokens import TokenError

ANON = {"role": "anon", "exp": 4102444800}
USER = {"role": "authenticated", "sub": "u1", "exp": 4102444800}


def verify(token: str) -> dict:
    if token == "user-token":
        return USER
    if token == "other-token":
        return {**USER, "sub": "u2"}
    if token == "expired":
        raise TokenError("InvalidJWTToken", "Token has expired 12 seconds ago")
    raise TokenError("MalformedJWT", "The token provided is not a valid JWT")


def join(topic: str = "realtime:room", ref: str = "1", bindings=None, **payload) -> Frame:
    config = {
        "broadcast": {"ack": False, "self": False},
        "presence": {"key": "", "enabled": False},
        "private": False,
        "postgres_changes": bindings if bindings is not None else [],
    }
    payload = {"config": config, "access_token": "user-token", **payload}
    return Frame(topic, "phx_join", payload, ref, ref)


def sent(effects) -> list[dict]:
    return [json.loads(e.frame.encode()) for e in effects if isinstance(e, Send)]


@pytest.fixture
def protocol() -> ChannelProtocol:
    return ChannelProtocol(ANON, verify, error_delay=5.0)


def test_server_frames_carry_exactly_topic_event_payload_and_a_ref_key() -> None:
    frame = Frame("realtime:a", "system", {"x": 1}, None, join_ref="9")

    assert json.loads(frame.encode()) == {
        "topic": "realtime:a",
        "event": "system",
        "payload": {"x": 1},
        "ref": None,
    }


@pytest.mark.parametrize(
    "text", ["not json", "[1]", '{"event": "x"}', '{"topic": "t", "event": "e", "payload": 3}']
)
def test_malformed_frames_raise_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError):
        Frame.decode(text)


def test_heartbeat_is_answered_on_phoenix_with_null_ref(protocol) -> None:
    frame = Frame.decode('{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null}')

    assert sent(protocol.receive(frame)) == [
        {
            "topic": "phoenix",
            "event": "phx_reply",
            "payload": {"status": "ok", "response": {}},
            "ref": None,
        }
    ]


def test_join_reply_echoes_bindings_in_order_with_nonzero_ids(protocol) -> None:
    bindings = [
        {"event": "UPDATE", "schema": "public", "table": "tasks", "filter": "id=eq.5"},
        {"event": "*", "schema": "public"},
        {"event": "INSERT", "schema": "public", "table": "tasks", "select": ["id"]},
    ]

    effects = protocol.receive(join(bindings=bindings))

    (reply,) = sent(effects)
    echoed = reply["payload"]["response"]["postgres_changes"]
    assert reply["ref"] == "1" and reply["payload"]["status"] == "ok"
    assert [{k: v for k, v in e.items() if k != "id"} for e in echoed] == bindings
    assert all(isinstance(e["id"], int) and e["id"] > 0 for e in echoed)
    assert len({e["id"] for e in echoed}) == 3
    assert [type(e) for e in effects] == [Joined, Send, Subscribe]


def test_identical_bindings_get_identical_ids() -> None:
    params = {"event": "UPDATE", "schema": "public", "table": "tasks"}

    assert Binding.from_params(dict(params)).id == Binding.from_params(dict(params)).id


def test_join_without_bindings_replies_an_empty_list_and_subscribes_nothing(protocol) -> None:
    effects = protocol.receive(join())

    assert sent(effects)[0]["payload"]["response"] == {"postgres_changes": []}
    assert not any(isinstance(e, Subscribe) for e in effects)


def test_channel_claims_come_from_the_access_token(protocol) -> None:
    protocol.receive(join())

    assert protocol.channels["realtime:room"].claims == USER


def test_sb_access_token_means_the_socket_key(protocol) -> None:
    protocol.receive(join(access_token="sb_publishable_abc"))

    assert protocol.channels["realtime:room"].claims == ANON


def test_bad_token_join_error_is_delayed_like_the_real_service(protocol) -> None:
    (effect,) = protocol.receive(join(access_token="expired"))

    assert effect.delay == 5.0
    assert json.loads(effect.frame.encode())["payload"] == {
        "status": "error",
        "response": {"reason": "InvalidJWTToken: Token has expired 12 seconds ago"},
    }
    assert protocol.channels == {}


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("room", "unmatched topic"),
        ("realtime:", "TopicNameRequired: You must provide a topic name"),
    ],
)
def test_bad_topics_are_refused(protocol, topic: str, reason: str) -> None:
    (reply,) = sent(protocol.receive(join(topic=topic)))

    assert reply["payload"] == {"status": "error", "response": {"reason": reason}}


def test_private_channels_need_service_role(protocol) -> None:
    frame = join()
    frame.payload["config"]["private"] = True

    (reply,) = sent(protocol.receive(frame))

    assert reply["payload"]["response"]["reason"].startswith("Unauthorized: ")


def test_leave_replies_ok_then_closes_with_the_join_ref(protocol) -> None:
    protocol.receive(join(ref="3"))

    effects = protocol.receive(Frame("realtime:room", "phx_leave", {}, "4", "3"))

    assert isinstance(effects[0], Left)
    assert [(f["event"], f["ref"]) for f in sent(effects)] == [
        ("phx_reply", "4"),
        ("phx_close", "3"),
    ]
    assert protocol.channels == {}


def test_leave_of_an_unknown_topic_is_ok(protocol) -> None:
    (reply,) = sent(protocol.receive(Frame("realtime:x", "phx_leave", {}, "2")))

    assert reply["payload"] == {"status": "ok", "response": {}}


def test_events_on_unjoined_topics_get_unmatched_topic(protocol) -> None:
    (reply,) = sent(protocol.receive(Frame("realtime:x", "broadcast", {}, "2")))

    assert reply["payload"]["response"] == {"reason": "unmatched topic"}


def test_duplicate_join_replaces_the_channel_and_closes_the_old_join_ref(protocol) -> None:
    protocol.receive(join(ref="1", bindings=[{"event": "*", "schema": "public"}]))
    old = protocol.channels["realtime:room"]

    effects = protocol.receive(join(ref="5", bindings=[{"event": "*", "schema": "public"}]))

    frames = sent(effects)
    assert [(f["event"], f["ref"]) for f in frames] == [("phx_reply", "5"), ("phx_close", "1")]
    assert old.closed and any(isinstance(e, Left) and e.channel is old for e in effects)
    assert protocol.channels["realtime:room"] is not old


def test_access_token_gets_no_reply_and_resubscribes_with_new_claims(protocol) -> None:
    protocol.receive(join(bindings=[{"event": "*", "schema": "public"}]))

    effects = protocol.receive(
        Frame("realtime:room", "access_token", {"access_token": "other-token"}, "2", "1")
    )

    assert sent(effects) == []
    assert [type(e) for e in effects] == [Subscribe]
    assert protocol.channels["realtime:room"].claims["sub"] == "u2"


@pytest.mark.parametrize("token", [None, "sb_secret_x", "user-token"])
def test_ignored_access_tokens_change_nothing(protocol, token) -> None:
    protocol.receive(join())

    effects = protocol.receive(Frame("realtime:room", "access_token", {"access_token": token}, "2"))

    assert effects == []


def test_invalid_access_token_shuts_the_channel_down(protocol) -> None:
    protocol.receive(join(ref="1"))

    effects = protocol.receive(
        Frame("realtime:room", "access_token", {"access_token": "expired"}, "2", "1")
    )

    system, close = sent(effects)
    assert system == json.loads(
        system_frame(
            "realtime:room", "system", "error", "Token has expired 12 seconds ago"
        ).encode()
    )
    assert (close["event"], close["ref"]) == ("phx_close", "1")
    assert protocol.channels == {}


def test_expired_channels_are_shut_down(protocol) -> None:
    protocol.receive(join())

    effects = protocol.expire(now=USER["exp"] + 3)

    system, close = sent(effects)
    assert system["payload"]["message"] == "Token has expired 3 seconds ago"
    assert close["event"] == "phx_close"
    assert protocol.expire(now=USER["exp"] + 4) == []


def test_broadcast_is_forwarded_and_acknowledged_only_with_ack(protocol) -> None:
    frame = join()
    frame.payload["config"]["broadcast"]["ack"] = True
    protocol.receive(frame)
    payload = {"type": "broadcast", "event": "e", "payload": {"a": 1}}

    effects = protocol.receive(Frame("realtime:room", "broadcast", payload, "2", "1"))

    assert isinstance(effects[0], Broadcast) and effects[0].payload == payload
    assert sent(effects)[0]["payload"] == {"status": "ok", "response": {}}


def test_bad_filters_are_kept_for_a_system_error_not_a_join_error(protocol) -> None:
    effects = protocol.receive(
        join(bindings=[{"event": "*", "schema": "public", "filter": "id=foo.1"}])
    )

    assert sent(effects)[0]["payload"]["status"] == "ok"
    binding = protocol.channels["realtime:room"].bindings[0]
    assert binding.error == 'Error parsing `filter` params: ["foo", "1"]'


def test_socket_close_leaves_every_channel(protocol) -> None:
    protocol.receive(join(topic="realtime:a"))
    protocol.receive(join(topic="realtime:b", ref="2"))

    effects = protocol.close()

    assert {e.channel.topic for e in effects if isinstance(e, Left)} == {"realtime:a", "realtime:b"}


def presence_frame(event: str, state=None, ref: str = "3") -> Frame:
    return Frame("realtime:room", "presence", {"event": event, "payload": state or {}}, ref, "1")


def test_track_replies_ok_and_enables_presence(protocol) -> None:
    protocol.receive(join())

    effects = protocol.receive(presence_frame("track", {"user": "alice"}))

    assert sent(effects)[0]["payload"] == {"status": "ok", "response": {}}
    (track,) = [e for e in effects if isinstance(e, Track)]
    assert track.state == {"user": "alice"} and track.channel.presence_enabled


def test_track_of_a_non_object_is_refused_like_the_real_service(protocol) -> None:
    protocol.receive(join())

    effects = protocol.receive(
        Frame("realtime:room", "presence", {"event": "track", "payload": [1]}, "3", "1")
    )

    assert sent(effects)[0]["payload"] == {
        "status": "error",
        "response": {"reason": "Presence track payload must be a map"},
    }
    assert not any(isinstance(e, Track) for e in effects)


def test_join_with_presence_pushes_the_state_after_the_reply_and_gets_a_key(protocol) -> None:
    frame = join()
    frame.payload["config"]["presence"] = {"key": "", "enabled": True}

    effects = protocol.receive(frame)

    kinds = [type(e).__name__ for e in effects]
    assert kinds.index("Send") < kinds.index("PresenceState")
    assert len(protocol.channels["realtime:room"].presence_key) == 36  # a generated uuid


def test_sixth_presence_call_in_thirty_seconds_shuts_the_channel_down() -> None:
    now = [1000.0]
    protocol = ChannelProtocol(ANON, verify, clock=lambda: now[0])
    protocol.receive(join())
    for _ in range(5):
        assert not any(isinstance(e, Left) for e in protocol.receive(presence_frame("track")))

    system, close = sent(protocol.receive(presence_frame("untrack")))

    assert system["payload"]["message"] == "Client presence rate limit exceeded"
    assert close["event"] == "phx_close" and protocol.channels == {}


def test_event_flood_shuts_the_channel_down_and_the_window_slides() -> None:
    now = [1000.0]
    protocol = ChannelProtocol(ANON, verify, clock=lambda: now[0])
    protocol.receive(join())
    payload = {"type": "broadcast", "event": "e", "payload": {}}
    for _ in range(100):
        protocol.receive(Frame("realtime:room", "broadcast", payload, None, "1"))

    flooded = sent(protocol.receive(Frame("realtime:room", "broadcast", payload, None, "1")))

    assert flooded[0]["payload"]["message"] == "Too many messages per second"
    protocol.receive(join())
    now[0] += 1.0
    assert isinstance(
        protocol.receive(Frame("realtime:room", "broadcast", payload, None, "1"))[0], Broadcast
    )


def test_join_flood_is_refused_and_disconnects() -> None:
    protocol = ChannelProtocol(ANON, verify, clock=lambda: 5.0)
    for index in range(100):
        protocol.receive(join(topic=f"realtime:t{index % 50}", ref=str(index)))

    effects = protocol.receive(join(topic="realtime:last", ref="x"))

    assert sent(effects)[0]["payload"]["response"] == {
        "reason": "ClientJoinRateLimitReached: Too many joins per second"
    }
    assert any(isinstance(e, Disconnect) for e in effects)


def test_next_expiry_is_the_earliest_channel_token(protocol) -> None:
    assert protocol.next_expiry() is None
    protocol.receive(join(topic="realtime:a"))

    assert protocol.next_expiry() == USER["exp"]


def test_random_frames_never_raise_out_of_the_protocol() -> None:
    protocol = ChannelProtocol(ANON, verify, error_delay=0)
    frames = st.fixed_dictionaries(
        {
            "topic": st.sampled_from(["realtime:a", "realtime:", "phoenix", "x", ""]),
            "event": st.sampled_from(
                ["phx_join", "phx_leave", "heartbeat", "access_token", "broadcast", "presence", "?"]
            ),
            "payload": st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                lambda inner: st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        ["config", "postgres_changes", "access_token", "event", "payload",
                         "presence", "broadcast", "filter", "table", "schema", "select", "key"]
                    ),
                    inner,
                    max_size=4,
                ),
                max_leaves=12,
            ),
            "ref": st.none() | st.integers() | st.text(max_size=3),
        }
    )  # fmt: skip

    @settings(max_examples=400, deadline=None)
    @given(st.lists(frames, max_size=6))
    def feed(batch: list[dict]) -> None:
        for data in batch:
            try:
                frame = Frame.decode(json.dumps(data))
            except ProtocolError:
                continue
            for effect in protocol.receive(frame):
                if isinstance(effect, Send):
                    assert set(json.loads(effect.frame.encode())) == {
                        "topic", "event", "payload", "ref"
                    }  # fmt: skip

    feed()
