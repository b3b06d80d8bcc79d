"""The stack's lifecycle: :class:`Localbase` (async) and :class:`LocalbaseThread` (own loop).

Start order: data dir lock, postgres, keys, pool, bootstrap + migrations, realtime, HTTP.
Stop order is the reverse, and every way out of :meth:`Localbase.start` or of the serving
task ends with postgres stopped: pg_ctl puts the server in its own session, so nothing else
would stop it when this process goes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import fcntl
import importlib
import importlib.util
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn

from localbase.app import create_app
from localbase.auth import AuthConfig
from localbase.blocking import run_blocking
from localbase.bootstrap import DEFAULT_MIGRATIONS_DIR, bootstrap
from localbase.database import Database
from localbase.errors import LocalbaseError
from localbase.keys import DEFAULT_ACCESS_TOKEN_LIFETIME, ProjectKeys, load_or_create_keys
from localbase.postgres import EmbeddedPostgres, default_data_dir

logger = logging.getLogger(__name__)

DEFAULT_PORT = 54321
_LOCK_FILE = "localbase.lock"


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: stopping is the embedding program's decision.

    (uvicorn's own handlers re-raise SIGTERM after serving, which would end the process
    before we stop postgres.)
    """

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class Localbase:
    """The embedded Supabase-compatible stack, run on the caller's event loop.

    Args:
        data_dir: where the cluster and the keys live; defaults to the user data dir.
        host: interface the HTTP gateway binds to.
        port: TCP port; 0 picks a free one (read it back from :attr:`url`).
        migrations_dir: ``supabase/migrations`` of the project.
        access_token_lifetime: seconds a user access token is valid (keep it above 10 s,
            or the clients refresh continuously).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        migrations_dir: Path = DEFAULT_MIGRATIONS_DIR,
        *,
        access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.host = host
        self.port = port
        self.migrations_dir = Path(migrations_dir)
        self.access_token_lifetime = access_token_lifetime
        self.postgres = EmbeddedPostgres(self.data_dir)
        self.database: Database | None = None
        self.realtime: Any = None
        self._keys: ProjectKeys | None = None
        self._server: _Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._lock_fd: int | None = None
        self._bound_port: int | None = None

    @property
    def url(self) -> str:
        """``http://<host>:<port>`` with the port actually bound."""
        if self._bound_port is None:
            raise LocalbaseError("localbase is not running")
        host = self.host
        if host in {"0.0.0.0", ""}:
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._bound_port}"

    @property
    def keys(self) -> ProjectKeys:
        if self._keys is None:
            self._keys = load_or_create_keys(self.data_dir)
        return self._keys

    async def start(self) -> None:
        """Bring the whole stack up; returns once HTTP is serving.

        Raises:
            LocalbaseError: with a readable message (port in use, postgres failed with its
                log tail, migration failed with its file name, data dir in use, ...).
        """
        try:
            await self._start()
        except BaseException as exc:
            # Cancellation included: a half-started stack must not leave postgres behind.
            await asyncio.shield(self.stop())
            if isinstance(exc, LocalbaseError | asyncio.CancelledError | KeyboardInterrupt):
                raise
            raise LocalbaseError(f"localbase failed to start: {exc}") from exc

    async def _start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        sock = self._bind()

        await run_blocking(self.postgres.start)
        keys = self.keys
        self.database = await Database.connect(self.postgres.dsn, min_size=1, max_size=10)
        async with self.database.pool.acquire() as conn:
            applied = await bootstrap(conn, self.migrations_dir)
        if applied:
            logger.info("applied migrations: %s", ", ".join(applied))

        self.realtime = _create_realtime(self.database, keys, self.postgres.dsn)
        if self.realtime is not None:
            await self.realtime.start()

        app = create_app(
            self.database,
            keys,
            realtime=self.realtime,
            auth_config=AuthConfig(access_token_lifetime=self.access_token_lifetime),
        )
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,
            ws_ping_interval=None,
        )
        self._server = _Server(config)
        self._serve_task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()
                raise LocalbaseError("the http server stopped during startup")
            await asyncio.sleep(0.01)
        logger.info("localbase serving on %s", self.url)

    async def stop(self) -> None:
        """Stop HTTP, realtime, the pool and postgres; safe to call more than once."""
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._serve_task), 10)
            if not self._serve_task.done():
                self._serve_task.cancel()
        self._server = None
        self._serve_task = None

        if self.realtime is not None:
            try:
                await self.realtime.stop()
            except Exception:
                logger.exception("realtime did not stop cleanly")
            self.realtime = None

        if self.database is not None:
            with contextlib.suppress(Exception):
                await self.database.close()
            self.database = None

        try:
            # Only the holder of the data dir lock may stop its postgres: a second start on
            # the same data dir fails at the lock and must leave the first one's server alone.
            if self._lock_fd is not None:
                await run_blocking(self.postgres.stop)
        finally:
            self._bound_port = None
            self._unlock_data_dir()

    # -- steps ------------------------------------------------------------------------------

    def _lock_data_dir(self) -> None:
        """One stack per data dir: a second one would stop the first one's postgres."""
        if self._lock_fd is not None:
            return
        path = self.data_dir / _LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LocalbaseError(
                f"data dir {self.data_dir} is in use by another localbase;"
                " stop it or pass a different --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _unlock_data_dir(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def _bind(self) -> socket.socket:
        """Bind the listening socket first, so "port in use" fails fast and clearly."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # Naming the protocol lets asyncio set TCP_NODELAY on accepted connections; without it
        # every second response on a kept-alive connection waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise LocalbaseError(
                    f"port {self.port} on {self.host} is already in use;"
                    " stop the other server or choose another port"
                ) from exc
            raise LocalbaseError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        sock.listen(128)
        sock.setblocking(False)
        self._bound_port = sock.getsockname()[1]
        return sock


def _create_realtime(database: Database, keys: ProjectKeys, dsn: str) -> Any:
    if importlib.util.find_spec("localbase.realtime") is None:
        logger.warning("localbase.realtime is missing; /realtime/v1 is not served")
        return None
    module = importlib.import_module("localbase.realtime")
    service_class = getattr(module, "RealtimeService", None)
    if service_class is None:
        logger.warning("localbase.realtime has no RealtimeService; /realtime/v1 is not served")
        return None
    return service_class(database, keys, replication_dsn=dsn)


class LocalbaseThread:
    """A :class:`Localbase` on a private event loop in a daemon thread.

    For synchronous callers and for programs whose own loop belongs to another framework.
    :meth:`stop` is registered with atexit, and a default SIGTERM disposition is replaced
    by one that exits normally, so postgres is stopped on Ctrl-C, SIGTERM and exceptions.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        migrations_dir: Path = DEFAULT_MIGRATIONS_DIR,
        **options: Any,
    ) -> None:
        self.localbase = Localbase(data_dir, host, port, migrations_dir, **options)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.localbase.url

    @property
    def keys(self) -> ProjectKeys:
        return self.localbase.keys

    @property
    def postgres(self) -> EmbeddedPostgres:
        return self.localbase.postgres

    def start(self, timeout: float = 60) -> None:
        """Start the stack and block until it serves.

        Raises:
            LocalbaseError: it failed to start, or did not within ``timeout`` seconds.
        """
        with self._lock:
            if self._thread is not None:
                raise LocalbaseError("this LocalbaseThread was already started")
            self._thread = threading.Thread(target=self._run, name="localbase", daemon=True)
            atexit.register(self.stop)
            _exit_normally_on_sigterm()
            self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise LocalbaseError(f"localbase did not start within {timeout:.0f}s")
        if self._error is not None:
            self._thread.join(30)
            error = self._error
            if isinstance(error, LocalbaseError):
                raise LocalbaseError(str(error)) from error
            raise LocalbaseError(f"localbase failed to start: {error}") from error

    def stop(self, timeout: float = 60) -> None:
        """Stop the stack and block until postgres is down; safe to call more than once."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None or not thread.is_alive():
            return
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout)
        if thread.is_alive():
            logger.error("localbase thread did not stop within %.0fs", timeout)
            self.localbase.postgres.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        try:
            await self.localbase.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await self.localbase.stop()


def _exit_normally_on_sigterm() -> None:
    """Turn a default SIGTERM into SystemExit so atexit handlers (postgres stop) run."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def exit_normally(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_normally)
