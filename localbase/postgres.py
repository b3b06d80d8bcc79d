"""The embedded PostgreSQL cluster, run from the binaries of the ``pgserver`` wheel.

We use only pgserver's binaries and its small root helpers, not ``pgserver.get_server``: that
one leaves the server running on SIGTERM and brings its own atexit and lock handling.

The cluster listens on a unix socket only (``listen_addresses=''``) and runs with
``wal_level=logical`` so the realtime service can decode changes with pgoutput. When the
process runs as root, PostgreSQL refuses to run, so the cluster belongs to the OS user
``pgserver`` (created on demand, as pgserver itself does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from localbase.errors import PostgresError

logger = logging.getLogger(__name__)

SYSTEM_USER = "pgserver"
SUPERUSER = "postgres"
DATABASE = "postgres"
PORT = 5432

# sun_path holds 108 bytes including the terminating NUL.
_SOCKET_PATH_LIMIT = 107
_LOG_TAIL_LINES = 30


def _bin_path() -> Path:
    # Importing pgserver touches platformdirs' runtime dir, which warns when XDG_RUNTIME_DIR
    # is unset; we never use that dir.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def default_data_dir() -> Path:
    """Return the platform's user data dir for Tasklight's localbase."""
    import platformdirs

    return Path(platformdirs.user_data_dir("tasklight", appauthor=False)) / "localbase"


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``<data_dir>/pgdata``, started and stopped by us.

    Args:
        data_dir: directory for this stack; the cluster lives in its ``pgdata`` subdirectory
            and survives restarts.
        settings: extra server settings passed as ``-c name=value``.
    """

    def __init__(self, data_dir: Path, settings: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.log_path = self.pgdata / "log" / "postgres.log"
        self.settings = {
            "wal_level": "logical",
            "max_replication_slots": "20",
            "max_wal_senders": "20",
            "max_connections": "100",
            "listen_addresses": "",
            "timezone": "UTC",
            **(settings or {}),
        }
        self.socket_dir: Path | None = None
        self._private_socket_dir: Path | None = None
        self._system_user = SYSTEM_USER if os.geteuid() == 0 else None

    # -- public API -------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """libpq keyword DSN for the superuser over the unix socket."""
        if self.socket_dir is None:
            raise PostgresError("postgres is not running")
        host = _quote_dsn(str(self.socket_dir))
        return f"host={host} port={PORT} user={SUPERUSER} dbname={DATABASE}"

    @property
    def is_running(self) -> bool:
        return self._running_pid() is not None

    def start(self) -> None:
        """Initialise the cluster if needed and start it; blocks until it accepts connections.

        Raises:
            PostgresError: initdb or the server failed; the message has the log's tail.
        """
        self._prepare_directories()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._clear_leftover_server()
        self.socket_dir = self._choose_socket_dir()
        self.log_path.parent.mkdir(exist_ok=True)
        self._chown(self.log_path.parent)

        options = [f"-c {shlex.quote(f'{name}={value}')}" for name, value in self.settings.items()]
        options.append(f"-c {shlex.quote(f'unix_socket_directories={self.socket_dir}')}")
        options.append(f"-c port={PORT}")
        args = ["-w", "-t", "60", "-l", str(self.log_path), "-o", " ".join(options), "start"]
        logger.info("starting postgres in %s", self.pgdata)
        try:
            self._run("pg_ctl", args, timeout=90)
        except PostgresError as exc:
            self._remove_private_socket_dir()
            raise PostgresError(f"{exc}\n{self._log_tail()}") from exc
        if self._running_pid() is None:
            raise PostgresError(f"postgres did not start\n{self._log_tail()}")
        logger.info("postgres listening on %s", self.socket_dir)

    def stop(self) -> None:
        """Stop the cluster (fast shutdown, then signals); does nothing when it is not running."""
        pid = self._running_pid()
        if pid is not None:
            logger.info("stopping postgres in %s", self.pgdata)
            try:
                self._run("pg_ctl", ["-w", "-t", "30", "-m", "fast", "stop"], timeout=40)
            except PostgresError as exc:
                logger.warning("pg_ctl stop failed, signalling the postmaster: %s", exc)
                _terminate(pid)
        self._remove_private_socket_dir()
        self.socket_dir = None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last lines of the server log (empty when there is none)."""
        return self._log_tail(lines)

    # -- steps ------------------------------------------------------------------------------

    def _prepare_directories(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self._system_user is None:
            return

        # As root: the server runs as the "pgserver" user, which must be able to reach the
        # binaries and own the data directory (pgserver.get_server does the same).
        POSTGRES_BIN_PATH = _bin_path()
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(self._system_user)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read, execute = 0o044, 0o011
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        self._chown(self.pgdata, recursive=True)

    def _initdb(self) -> None:
        if any(self.pgdata.iterdir()):
            raise PostgresError(
                f"{self.pgdata} is neither empty nor a postgres data directory (no PG_VERSION)"
            )
        logger.info("initialising a new postgres cluster in %s", self.pgdata)
        self._run(
            "initdb",
            ["--auth=trust", "--encoding=UTF8", "--no-locale", "-U", SUPERUSER],
            timeout=120,
        )

    def _clear_leftover_server(self) -> None:
        """Stop a server left behind by a killed process, or drop a stale postmaster.pid.

        A leftover server would still have the previous run's socket directory and settings,
        so it is stopped rather than reused.
        """
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = self._running_pid()
        if pid is None:
            logger.info("removing stale %s", pid_file)
            pid_file.unlink(missing_ok=True)
            return
        logger.warning("postgres (pid %d) is still running from an earlier run; stopping it", pid)
        self.stop()
        pid_file.unlink(missing_ok=True)

    def _choose_socket_dir(self) -> Path:
        """Use pgdata when the socket path fits in sun_path, else a private dir under /tmp."""
        if len(os.fsencode(self.pgdata / f".s.PGSQL.{PORT}")) <= _SOCKET_PATH_LIMIT:
            return self.pgdata
        base = tempfile.gettempdir()
        if len(base) > 40:
            base = "/tmp"
        path = Path(tempfile.mkdtemp(prefix="localbase-", dir=base))
        self._chown(path)
        self._private_socket_dir = path
        return path

    def _remove_private_socket_dir(self) -> None:
        if self._private_socket_dir is not None:
            shutil.rmtree(self._private_socket_dir, ignore_errors=True)
            self._private_socket_dir = None

    # -- helpers ----------------------------------------------------------------------------

    def _running_pid(self) -> int | None:
        """Return the postmaster's pid when postmaster.pid names a live postgres process."""
        try:
            first_line = (self.pgdata / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first_line.strip())
        except (OSError, IndexError, ValueError):
            return None
        return pid if _is_postgres_process(pid) else None

    def _run(self, program: str, args: list[str], *, timeout: float) -> str:
        """Run one of the wheel's binaries on our pgdata; raise PostgresError with its output."""
        command = [str(_bin_path() / program), "-D", str(self.pgdata), *args]
        kwargs: dict = {}
        if self._system_user is not None:
            kwargs["user"] = self._system_user
            kwargs["group"] = self._system_user
            kwargs["extra_groups"] = []
        # Temporary files rather than pipes: pg_ctl's postmaster inherits the output handles,
        # and a pipe kept open by it would make us wait forever (pgserver notes the same).
        with tempfile.TemporaryFile("w+") as out:
            try:
                subprocess.run(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.pgdata,
                    timeout=timeout,
                    check=True,
                    text=True,
                    **kwargs,
                )
            except subprocess.CalledProcessError as exc:
                out.seek(0)
                raise PostgresError(
                    f"{program} failed with exit code {exc.returncode}: {out.read().strip()}"
                ) from exc
            except subprocess.TimeoutExpired as exc:
                out.seek(0)
                raise PostgresError(
                    f"{program} timed out after {timeout:.0f}s: {out.read().strip()}"
                ) from exc
            out.seek(0)
            return out.read()

    def _chown(self, path: Path, *, recursive: bool = False) -> None:
        if self._system_user is None:
            return
        import pwd

        entry = pwd.getpwnam(self._system_user)
        paths = [path]
        if recursive:
            paths += [
                Path(root) / name for root, dirs, files in os.walk(path) for name in dirs + files
            ]
        for item in paths:
            with contextlib.suppress(FileNotFoundError):
                if item.lstat().st_uid != entry.pw_uid:
                    os.lchown(item, entry.pw_uid, entry.pw_gid)

    def _log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no postgres log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"last lines of {self.log_path}:\n{tail}"


def _is_postgres_process(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return True  # no /proc (macOS): trust the signal probe
    return name in {"postgres", "postmaster"}


def _terminate(pid: int) -> None:
    """SIGINT (fast shutdown), then SIGQUIT, then SIGKILL, waiting a little between them."""
    for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _is_postgres_process(pid):
                return
            time.sleep(0.05)
    logger.error("postgres (pid %d) did not exit", pid)


def _quote_dsn(value: str) -> str:
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
