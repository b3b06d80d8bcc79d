"""The ``/realtime/v1/websocket`` endpoint: a thin I/O loop around :class:`ChannelProtocol`.

Per socket: check the ``apikey`` (refusing the upgrade like the real service), then read
frames, hand them to the protocol and carry out its effects. Everything the socket sends goes
through one queue drained by one task, so replies, ``system`` messages and changes leave in
the order they were produced. Malformed frames are logged and dropped, never fatal; a frame
over the real service's 5 MB limit closes that socket alone with 1009 (message too big).
Channel tokens are re-checked when the earliest one expires, not on a polling timer, so an
idle socket costs nothing.

Log levels: INFO socket open/close; DEBUG every frame (``<`` in, ``>`` out); WARNING refused
connections; ERROR our own bugs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from localbase.realtime.protocol import (
    Broadcast,
    ChannelProtocol,
    Disconnect,
    Effect,
    Frame,
    Joined,
    Left,
    PresenceState,
    ProtocolError,
    Send,
    Subscribe,
    Track,
)
from localbase.realtime.tokens import TokenError, verify_api_key, verify_token

if TYPE_CHECKING:
    from localbase.realtime.service import RealtimeService

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 5_000_000  # Phoenix's max_frame_size in the real service
MAX_EXPIRY_WAIT_SECONDS = 300.0  # upstream re-checks tokens at least every 5 minutes


class Outbox:
    """The socket's send queue (the hub's :class:`~localbase.realtime.hub.Sink`)."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.closed = False
        self.close_code: int | None = None  # set to close the socket once the queue is sent
        self.changed = asyncio.Event()  # channels or tokens changed: re-plan the expiry check
        self.reset: Callable[[], None] = lambda: None  # crash the postgres_changes channels

    def push(self, text: str) -> None:
        if not self.closed:
            self.queue.put_nowait(text)

    def push_later(self, text: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.push, text)

    def close(self, code: int) -> None:
        """Close the socket after the frames already queued (a sentinel ends the drain)."""
        if not self.closed:
            self.close_code = code
            self.queue.put_nowait("")
            self.closed = True

    async def drain(self) -> None:
        """Send queued frames until the socket fails or the task is cancelled."""
        while True:
            text = await self.queue.get()
            try:
                if not text:
                    await self.websocket.close(self.close_code or 1000)
                    return
                log.debug("> %s", text[:200])
                await self.websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True
                return


async def serve_socket(service: RealtimeService, websocket: WebSocket) -> None:
    """Serve one realtime socket until the client goes away or stops heart-beating."""
    key = websocket.headers.get("x-api-key") or websocket.query_params.get("apikey")
    try:
        socket_claims = verify_api_key(key, service.keys)
    except TokenError as exc:
        await _refuse(service, websocket, exc.message)
        return

    await websocket.accept()
    log.info("realtime socket open from %s as %s", websocket.client, socket_claims.get("role"))
    outbox = Outbox(websocket)
    protocol = ChannelProtocol(
        socket_claims,
        lambda token: verify_token(token, service.keys.jwt_secret),
        error_delay=service.join_error_delay,
    )
    sender = asyncio.create_task(outbox.drain(), name="realtime-send")
    expiry = asyncio.create_task(_expire_tokens(service, protocol, outbox), name="realtime-exp")
    tasks: set[asyncio.Task[None]] = set()
    outbox.reset = lambda: _apply(service, protocol.crash_postgres_changes(), outbox, tasks)
    service.sockets.add(outbox)
    try:
        await _receive_loop(service, websocket, protocol, outbox, tasks)
        if outbox.close_code is not None:
            await asyncio.wait_for(asyncio.shield(sender), 5)  # flush, then the close frame
    except TimeoutError:
        log.warning("realtime socket from %s did not drain within 5 s", websocket.client)
    finally:
        service.sockets.discard(outbox)
        outbox.closed = True
        _apply(service, protocol.close(), outbox, tasks)
        for task in (sender, expiry, *tasks):
            task.cancel()
        await asyncio.gather(sender, expiry, *tasks, return_exceptions=True)
        log.info("realtime socket closed from %s", websocket.client)


async def _receive_loop(
    service: RealtimeService,
    websocket: WebSocket,
    protocol: ChannelProtocol,
    outbox: Outbox,
    tasks: set[asyncio.Task[None]],
) -> None:
    while not outbox.closed:
        try:
            message = await asyncio.wait_for(websocket.receive(), service.idle_timeout)
        except TimeoutError:
            log.info("closing realtime socket idle for %.0f s", service.idle_timeout)
            with contextlib.suppress(RuntimeError, OSError):
                await websocket.close(1000)
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text") or message.get("bytes") or ""
        if len(text) > MAX_FRAME_BYTES:
            log.warning(
                "closing realtime socket from %s: frame of %d bytes is over the %d limit",
                websocket.client,
                len(text),
                MAX_FRAME_BYTES,
            )
            outbox.close(1009)
            return
        log.debug("< %s", text[:200])
        try:
            frame = Frame.decode(text)
        except ProtocolError as exc:
            log.info("dropping malformed frame from %s: %s", websocket.client, exc)
            continue
        try:
            effects = protocol.receive(frame)
        except Exception:
            log.exception("realtime protocol failed on %s %s", frame.topic, frame.event)
            continue
        _apply(service, effects, outbox, tasks)
        if frame.event in ("phx_join", "access_token", "phx_leave"):
            outbox.changed.set()


def _apply(
    service: RealtimeService,
    effects: list[Effect],
    outbox: Outbox,
    tasks: set[asyncio.Task[None]],
) -> None:
    for effect in effects:
        if isinstance(effect, Send):
            if effect.delay > 0:
                outbox.push_later(effect.frame.encode(), effect.delay)
            else:
                outbox.push(effect.frame.encode())
        elif isinstance(effect, Joined):
            service.joined(effect.channel, outbox)
        elif isinstance(effect, Left):
            service.left(effect.channel)
        elif isinstance(effect, Subscribe):
            task = asyncio.create_task(_subscribe(service, effect, outbox))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif isinstance(effect, Broadcast):
            service.broadcast(effect.channel, effect.payload)
        elif isinstance(effect, Track):
            service.track(effect.channel, effect.state)
        elif isinstance(effect, PresenceState):
            service.push_presence_state(effect.channel, outbox)
        elif isinstance(effect, Disconnect):
            log.warning("disconnecting realtime socket: %s", effect.reason)
            outbox.close(1001)


SUBSCRIBE_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0)


async def _subscribe(service: RealtimeService, effect: Subscribe, outbox: Outbox) -> None:
    """Subscribe, retrying while the database is unreachable (upstream retries too, and a
    system error would make the client rejoin into a duplicate-join close)."""
    for attempt in itertools.count():
        try:
            await service.subscribe(effect.channel, outbox)
            return
        except Exception as exc:
            if effect.channel.closed or outbox.closed:
                return
            delay = SUBSCRIBE_RETRY_SECONDS[min(attempt, len(SUBSCRIBE_RETRY_SECONDS) - 1)]
            log.warning(
                "subscription of %s failed (%s); retrying in %.0f s",
                effect.channel.topic,
                exc,
                delay,
            )
            await asyncio.sleep(delay)


async def _expire_tokens(
    service: RealtimeService, protocol: ChannelProtocol, outbox: Outbox
) -> None:
    """Shut channels down when their token expires; sleeps until the earliest ``exp``."""
    while True:
        deadline = protocol.next_expiry()
        wait = MAX_EXPIRY_WAIT_SECONDS
        if deadline is not None:
            wait = min(max(deadline - time.time(), 0.0) + 0.01, wait)
        outbox.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(outbox.changed.wait(), wait)
        _apply(service, protocol.expire(time.time()), outbox, set())


async def _refuse(service: RealtimeService, websocket: WebSocket, message: str) -> None:
    """Refuse the upgrade with 401 and ``{"error": ...}`` after the real service's delay."""
    log.warning("refusing realtime socket from %s: %s", websocket.client, message)
    await asyncio.sleep(service.connect_error_delay)
    try:
        await websocket.send_denial_response(JSONResponse({"error": message}, status_code=401))
    except RuntimeError:
        await websocket.close(code=1008)  # the server cannot send an HTTP response: plain 403
