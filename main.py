#!/usr/bin/env python3
"""Tasklight's command line: run the app (default), a worker alone, or the embedded stack alone.

Wiring only: options and environment are read here, the services and pages are built from
them, and NiceGUI is started. Errors a user can fix end in one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import math
import os
import re
import secrets
import signal
import socket
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localbase.server import LocalbaseThread
    from services.jobs import JobRegistry
    from services.settings import Settings
    from ui.pages import PageOptions

# Heavy imports (NiceGUI, the stack) happen inside the commands, so `--help` stays quick.
log = logging.getLogger("tasklight")

COMMANDS = ("run", "worker", "localbase")
DEFAULT_UI_PORT = 8080
DEFAULT_LOCALBASE_PORT = 54321
DEFAULT_HOST = "127.0.0.1"
STORAGE_SECRET_ENV = "TASKLIGHT_STORAGE_SECRET"
STORAGE_SECRET_FILE = "ui-storage-secret"
# NiceGUI's per-browser storage (it holds each browser's refresh token): private, per data dir.
UI_STORAGE_DIR = "ui-storage"
KIOSK_RESET_ENV = "TASKLIGHT_KIOSK_RESET"
DEFAULT_KIOSK_RESET = 15.0
WINDOW_SIZE = (1200, 860)
NATIVE_INSTALL_HINT = (
    "the native window needs pywebview with a Qt backend: run `uv sync --extra native` "
    "(or `pip install 'pywebview[qt]'`); on Linux also the system libraries Qt needs, e.g. "
    "`apt-get install libxcb-cursor0 libxkbcommon-x11-0 libegl1 libnss3`"
)

NO_DISPLAY_HINT = (
    "the native window needs a display, but neither DISPLAY nor WAYLAND_DISPLAY is set; "
    "run without --native (the page opens in a browser) or start it in a desktop session"
)

ENVIRONMENT_HELP = textwrap.dedent(
    f"""\
    environment (read from the process and from a .env file in the working directory):
      SUPABASE_URL               project URL, e.g. https://<ref>.supabase.co; when it is unset,
                                 `run` starts the embedded stack (localbase) instead
      SUPABASE_PUBLISHABLE_KEY   public key (sb_publishable_...) for the browsers' sessions,
                                 which run on this server; SUPABASE_ANON_KEY when unset
      SUPABASE_SECRET_KEY        secret key (sb_secret_...) for the worker only, never sent to a
                                 browser; SUPABASE_SERVICE_ROLE_KEY when unset. Without either,
                                 `run` starts no worker and tasks wait for `main.py worker`
      {STORAGE_SECRET_ENV}   signs NiceGUI's per-browser storage cookie (default: a random
                                 secret kept in <data dir>/{STORAGE_SECRET_FILE})
      {KIOSK_RESET_ENV}      default of --kiosk-reset (seconds)

    `main.py COMMAND --help` lists the options of each command.
    """
)


class CliError(Exception):
    """A problem the user can fix; main() prints it as one line and exits non-zero."""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit status."""
    args = build_parser().parse_args(_with_default_command(argv))
    configure_logging(args.log_level)
    try:
        return args.handler(args)
    except CliError as exc:
        print(f"tasklight: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The parser for all three commands; `--help` on each explains every option."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="how much to log to stderr (default: info)",
    )
    jobs = argparse.ArgumentParser(add_help=False)
    jobs.add_argument(
        "--jobs",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE and register its jobs (register_jobs(registry) or JOBS); repeatable",
    )
    default_dir = "the platform's user data dir, e.g. ~/.local/share/tasklight/localbase"
    run_data = _data_dir_parent(
        "directory for the embedded stack's database and keys and the web app's private "
        f"per-browser storage (ui-storage/) and its secret (default: {default_dir})"
    )
    stack_data = _data_dir_parent(
        f"directory for the embedded stack's database and keys (default: {default_dir})"
    )

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Tasklight: submit background tasks and watch them live "
        "(NiceGUI + Supabase Realtime). Without a command, `run` is assumed.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,worker,localbase}")

    run = commands.add_parser(
        "run",
        parents=[common, run_data, jobs],
        help="serve the web app (default command)",
        description="Serve the web app. Without SUPABASE_URL the embedded stack and a worker run "
        "in this process; with it, that project is used and a worker runs here only when a "
        "secret key is configured.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=formatter,
    )
    run.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address the web app listens on (default: 127.0.0.1; 0.0.0.0 serves the intranet)",
    )
    run.add_argument(
        "--port", type=int, default=DEFAULT_UI_PORT, help="port of the web app (default: 8080)"
    )
    run.add_argument(
        "--localbase-port",
        type=int,
        default=DEFAULT_LOCALBASE_PORT,
        help="port of the embedded stack on 127.0.0.1, used when SUPABASE_URL is "
        "unset (default: 54321)",
    )
    run.add_argument("--no-show", action="store_true", help="do not open the page in a browser")
    run.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="URL prefix under which a reverse proxy serves the app, e.g. /tasklight "
        "(the proxy strips it before forwarding)",
    )
    run.add_argument(
        "--native",
        action="store_true",
        help="open the page in a native window (needs the `native` extra: pywebview + Qt); "
        "closing the window stops the app",
    )
    run.add_argument(
        "--kiosk",
        action="store_true",
        help="serve the kiosk at / (one job kind, large type, dark, self-resetting); full "
        "screen in a native window when pywebview is installed and a display exists (and "
        "not --no-show), else in the browser",
    )
    run.add_argument(
        "--kiosk-kind",
        default=None,
        metavar="KIND",
        help="the kiosk's job kind (default: the first one, demo)",
    )
    run.add_argument(
        "--kiosk-reset",
        type=float,
        # A string default goes through `type` too, so a bad environment value becomes a
        # usage error rather than a traceback while the parser is built.
        default=os.environ.get(KIOSK_RESET_ENV) or str(DEFAULT_KIOSK_RESET),
        metavar="SECONDS",
        help="seconds after a task ends until the kiosk shows a fresh form (default: 15)",
    )
    run.set_defaults(handler=command_run)

    worker = commands.add_parser(
        "worker",
        parents=[common, jobs],
        help="run a worker alone (needs SUPABASE_URL and a secret key)",
        description="Claim and run pending tasks of the configured project until stopped. "
        "Several workers may run at once.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=formatter,
    )
    worker.set_defaults(handler=command_worker)

    localbase = commands.add_parser(
        "localbase",
        parents=[common, stack_data],
        help="serve only the embedded Supabase-compatible stack",
        description="Serve only the embedded stack. First prints SUPABASE_URL and the keys as "
        "KEY=value lines (like `supabase status -o env`), then serves until Ctrl-C or SIGTERM.",
        formatter_class=formatter,
    )
    localbase.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default: 127.0.0.1)"
    )
    localbase.add_argument(
        "--port",
        type=int,
        default=DEFAULT_LOCALBASE_PORT,
        help="port to listen on (default: 54321)",
    )
    localbase.set_defaults(handler=command_localbase)
    return parser


def _data_dir_parent(help_text: str) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--data-dir", type=Path, default=None, help=help_text)
    return parent


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if level != "debug":
        # One line per REST call (the worker polls every few seconds) is debugging detail.
        logging.getLogger("httpx").setLevel(logging.WARNING)


# Commands -----------------------------------------------------------------------------------


def command_run(args: argparse.Namespace) -> int:
    """Serve the UI; start localbase and a worker in-process when the project is embedded."""
    from services.settings import Settings

    settings = Settings()
    registry = load_registry(args.jobs)
    check_page_options(args, registry)
    native = wants_native(args)
    data_dir = resolve_data_dir(args.data_dir)
    ensure_port_free(args.host, args.port, "--port", host_option="--host")
    # Before NiceGUI is imported: it reads its storage path at import time.
    use_private_ui_storage(data_dir)
    from nicegui import app, ui

    options = page_options(args, registry)

    runner: LocalbaseThread | None = None
    if settings.is_configured:
        check_reachable(settings.supabase_url or "", settings.public_key or "")
        log.info("using the supabase project at %s", settings.supabase_url)
        wire_app(settings, registry, options)
    else:
        runner = stack = start_embedded_stack(data_dir, args.localbase_port)
        wire_app(stack_settings(stack), registry, options)
        # Registered last, so the worker and the browsers' sessions are closed before it.
        app.on_shutdown(lambda: asyncio.to_thread(stack.stop))

    log.info("tasklight serving on http://%s:%d%s", args.host, args.port, args.root_path)
    if native:
        prepare_native()
        log.info("opening a native window%s", " in full screen" if args.kiosk else "")
    try:
        ui.run(
            reload=False,
            title="Tasklight",
            host=args.host,
            port=args.port,
            show=_show_target(args) if not native else False,
            native=native,
            window_size=WINDOW_SIZE if native and not args.kiosk else None,
            fullscreen=native and args.kiosk,
            root_path=args.root_path,
            storage_secret=storage_secret(data_dir),
            # Access lines for every asset (and localbase's API calls) only when debugging.
            uvicorn_logging_level="debug" if args.log_level == "debug" else "warning",
            show_welcome_message=False,
            favicon="💡",
        )
    except BaseException:
        # A normal shutdown stops the stack in the shutdown handler; a server that never
        # started (or died) must not leave Postgres running.
        if runner is not None:
            runner.stop()
        raise
    return 0


def command_worker(args: argparse.Namespace) -> int:
    """Run one worker until Ctrl-C or SIGTERM."""
    from services.settings import Settings

    settings = Settings()
    if not settings.supabase_url or not settings.secret_key:
        raise CliError(
            "the worker needs SUPABASE_URL and SUPABASE_SECRET_KEY (or "
            "SUPABASE_SERVICE_ROLE_KEY) in the environment or .env; nothing started"
        )
    check_reachable(settings.supabase_url, settings.secret_key)
    registry = load_registry(args.jobs)
    return asyncio.run(_serve_worker(settings, registry))


def command_localbase(args: argparse.Namespace) -> int:
    """Serve only the embedded stack, printing its URL and keys first."""
    data_dir = resolve_data_dir(args.data_dir)
    ensure_port_free(args.host, args.port, "--port", host_option="--host")
    return asyncio.run(_serve_localbase(data_dir, args.host, args.port))


# Wiring helpers -----------------------------------------------------------------------------


def start_embedded_stack(data_dir: Path, port: int) -> LocalbaseThread:
    """Start localbase on its own thread (it also stops itself at exit)."""
    from localbase.errors import LocalbaseError
    from localbase.server import LocalbaseThread

    ensure_port_free(DEFAULT_HOST, port, "--localbase-port")
    runner = LocalbaseThread(data_dir, DEFAULT_HOST, port)
    try:
        runner.start(timeout=120)
    except LocalbaseError as exc:
        log.debug("embedded stack start-up failed: %s", exc)
        runner.stop()
        raise CliError(f"the embedded stack did not start: {_first_line(exc)}") from exc
    log.info("embedded stack serving at %s (data in %s)", runner.url, data_dir)
    return runner


def stack_settings(runner: LocalbaseThread) -> Settings:
    """Settings that point at a running embedded stack, with its publishable and secret key."""
    from pydantic import SecretStr

    from services.settings import Settings

    return Settings(
        supabase_url=runner.url,
        supabase_publishable_key=SecretStr(runner.keys.publishable_key),
        supabase_secret_key=SecretStr(runner.keys.secret_key),
    )


def wire_app(settings: Settings, registry: JobRegistry, options: PageOptions | None = None) -> None:
    """Register the pages and, when a secret key is configured, an in-process worker."""
    import dataclasses

    from ui import pages

    if settings.secret_key:
        add_worker(settings, registry)
    else:
        log.warning("no secret key configured: tasks wait for an external `main.py worker`")
    options = dataclasses.replace(
        options or pages.PageOptions(), local_worker=bool(settings.secret_key)
    )
    pages.register(settings, registry, options)


def page_options(args: argparse.Namespace, registry: JobRegistry) -> PageOptions:
    """The surfaces' settings from the command line; an unknown kiosk kind is a CliError."""
    check_page_options(args, registry)
    from ui.pages import PageOptions

    return PageOptions(kiosk=args.kiosk, kiosk_kind=args.kiosk_kind, kiosk_reset=args.kiosk_reset)


def check_page_options(args: argparse.Namespace, registry: JobRegistry) -> None:
    """Refuse wrong surface options (a CliError) before anything starts or is imported."""
    if args.kiosk_kind is not None and args.kiosk_kind not in registry:
        known = ", ".join(registry.kinds())
        raise CliError(f"--kiosk-kind {args.kiosk_kind!r} is not a job kind; known: {known}")
    if not math.isfinite(args.kiosk_reset) or args.kiosk_reset < 0:
        raise CliError("--kiosk-reset must be 0 or more seconds")
    args.root_path = normalize_root_path(args.root_path)


_ROOT_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def normalize_root_path(path: str) -> str:
    """`/tasklight/` -> `/tasklight`; "" or "/" -> ""; a URL or `//host` is a CliError.

    The prefix goes into every asset URL, so it must be a plain absolute path on this host.
    """
    if not path.strip("/"):
        if path and not path.startswith("/"):
            raise CliError(f"--root-path {path!r} must start with /")
        return ""
    trimmed = path.rstrip("/")
    if not trimmed.startswith("/"):
        raise CliError(f"--root-path {path!r} must start with /")
    segments = trimmed.split("/")[1:]
    if not _ROOT_PATH.fullmatch(trimmed) or any(part in (".", "..") for part in segments):
        raise CliError(
            f"--root-path {path!r} must be a path like /tasklight (letters, digits, . _ ~ -; "
            "no //, host, scheme, query or ..)"
        )
    return trimmed


def wants_native(args: argparse.Namespace) -> bool:
    """Whether to open a native window; `--native` without the extra or a display is a CliError.

    `--kiosk` uses the native window only when the extra is installed, a display exists and
    `--no-show` is not given; otherwise the kiosk is served to the browser.
    """
    if args.native:
        if not native_available():
            raise CliError(NATIVE_INSTALL_HINT)
        if not display_available():
            raise CliError(NO_DISPLAY_HINT)
        return True
    return bool(args.kiosk and not args.no_show and native_available() and display_available())


def display_available() -> bool:
    """False on Linux/BSD without DISPLAY or WAYLAND_DISPLAY (Qt would abort there)."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def native_available() -> bool:
    """True when pywebview and a Qt binding with its web engine can be imported."""
    import importlib.util

    return (
        all(importlib.util.find_spec(name) is not None for name in ("webview", "qtpy", "PyQt6"))
        and importlib.util.find_spec("PyQt6.QtWebEngineWidgets") is not None
    )


def prepare_native() -> None:
    """Use pywebview's Qt backend; as root, Qt's web engine must run without its sandbox."""
    from nicegui import app

    app.native.start_args["gui"] = "qt"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
        log.warning("running as root: the native window's web engine runs without its sandbox")


def _show_target(args: argparse.Namespace) -> bool | str:
    """Open the browser on the page the user asked for (the kiosk, or the root)."""
    if args.no_show:
        return False
    return "/kiosk" if args.kiosk else True


def add_worker(settings: Settings, registry: JobRegistry) -> None:
    """Run a worker on NiceGUI's event loop from start-up to shutdown."""
    from nicegui import app, background_tasks

    from services.worker import Worker

    assert settings.supabase_url and settings.secret_key
    worker = Worker(settings.supabase_url, settings.secret_key, registry)
    running: list[asyncio.Task[None]] = []

    def start() -> None:
        running.append(background_tasks.create(worker.run(), name="worker"))

    async def stop() -> None:
        worker.stop()
        # The worker gives a running task a grace period, then releases it itself.
        await asyncio.gather(*running, return_exceptions=True)

    app.on_startup(start)
    app.on_shutdown(stop)


async def _serve_worker(settings: Settings, registry: JobRegistry) -> int:
    from services.worker import Worker

    assert settings.supabase_url and settings.secret_key
    worker = Worker(settings.supabase_url, settings.secret_key, registry)
    await worker.run(_stop_event())
    return 0


async def _serve_localbase(data_dir: Path, host: str, port: int) -> int:
    from localbase.errors import LocalbaseError
    from localbase.server import Localbase

    stack = Localbase(data_dir, host=host, port=port)
    stopped = _stop_event()
    try:
        try:
            await stack.start()
        except LocalbaseError as exc:
            log.debug("embedded stack start-up failed: %s", exc)
            raise CliError(f"the embedded stack did not start: {_first_line(exc)}") from exc
        keys = stack.keys
        print(f"SUPABASE_URL={stack.url}")
        print(f"SUPABASE_ANON_KEY={keys.anon_key}")
        print(f"SUPABASE_SERVICE_ROLE_KEY={keys.service_role_key}")
        print(f"SUPABASE_PUBLISHABLE_KEY={keys.publishable_key}")
        print(f"SUPABASE_SECRET_KEY={keys.secret_key}", flush=True)
        await stopped.wait()
        log.info("stopping the embedded stack")
    finally:
        # Postgres is stopped on every way out: signal, start-up error, exception.
        await stack.stop()
    return 0


def _stop_event() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    return stopped


def load_registry(modules: Sequence[str]) -> JobRegistry:
    from services.jobs import JobRegistry

    registry = JobRegistry.with_builtins()
    registry.load_entry_points()
    for module in modules:
        try:
            registry.load_module(module)
        except (ImportError, ValueError, TypeError) as exc:
            raise CliError(f"cannot load jobs from {module!r}: {exc}") from exc
    return registry


def resolve_data_dir(path: Path | None) -> Path:
    """The data dir, created if needed; a file or unwritable place is a CliError."""
    from localbase.postgres import default_data_dir

    data_dir = (path or default_data_dir()).expanduser().absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot use data dir {data_dir}: {exc.strerror or exc}") from exc
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise CliError(f"cannot use data dir {data_dir}: not writable")
    return data_dir


def use_private_ui_storage(data_dir: Path) -> Path:
    """Keep NiceGUI's per-browser storage in `<data dir>/ui-storage`, mode 0700.

    That storage holds every browser's refresh token; NiceGUI's default is `.nicegui/` in the
    working directory, readable by everyone (0644 files in a 0755 directory).
    """
    path = data_dir / UI_STORAGE_DIR
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)  # also when it existed with a wider mode
    except OSError as exc:
        reason = exc.strerror or exc
        raise CliError(f"cannot use {path} for the browsers' storage: {reason}") from exc
    os.environ["NICEGUI_STORAGE_PATH"] = str(path)
    if "nicegui.storage" in sys.modules:  # imported already (e.g. in tests): point it there too
        from nicegui import app
        from nicegui.storage import Storage

        if Storage.path != path:
            Storage.path = path
            app.storage = Storage()
    return path


def storage_secret(data_dir: Path) -> str:
    """The secret for NiceGUI's storage: from the environment, else kept per data dir."""
    if secret := os.environ.get(STORAGE_SECRET_ENV):
        return secret
    path = data_dir / STORAGE_SECRET_FILE
    if path.is_file():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


def ensure_port_free(host: str, port: int, option: str, host_option: str | None = None) -> None:
    """Fail early with a clear line instead of a server's bind traceback.

    A host that is no address (256.1.1.1) or not one of this machine's is blamed on
    `host_option`; a port in use (or not allowed) on `option`.
    """
    if not 0 <= port <= 65535:
        raise CliError(f"{option} {port} is not a port number")
    fix_host = f"; choose another address with {host_option}" if host_option else ""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise CliError(
            f"cannot listen on {host!r}: not an IP address or a known host name{fix_host}"
        ) from exc
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno == errno.EADDRNOTAVAIL:
                raise CliError(
                    f"cannot listen on {host}: not an address of this machine ({reason}){fix_host}"
                ) from exc
            raise CliError(
                f"cannot listen on {host}:{port} ({reason}); choose another port with {option}"
            ) from exc


def check_reachable(url: str, key: str) -> None:
    """Any HTTP answer from the project's gateway will do; no answer is a CliError."""
    import httpx

    try:
        httpx.get(f"{url.rstrip('/')}/auth/v1/health", headers={"apikey": key}, timeout=10)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the supabase project at {url}: {exc}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _with_default_command(argv: Sequence[str] | None) -> list[str]:
    """Insert `run` when no command is named (but keep a bare --help for the overview)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(arg in COMMANDS for arg in args) or args in (["-h"], ["--help"]):
        return args
    return ["run", *args]


def simulate() -> None:
    """Set the app up for NiceGUI's `user` test fixture, which runs this file under pytest.

    The fixture runs the file with pytest's command line, so the configuration comes from
    the environment only (SUPABASE_URL and keys, e.g. of the tests' localbase).
    """
    from nicegui import ui

    from services.settings import Settings
    from ui.pages import PageOptions

    settings = Settings()
    if not settings.is_configured:
        raise RuntimeError("the simulated app needs SUPABASE_URL and a public key in the env")
    registry = load_registry([])
    reset = float(os.environ.get(KIOSK_RESET_ENV) or DEFAULT_KIOSK_RESET)
    wire_app(settings, registry, PageOptions(kiosk_reset=reset))
    secret = os.environ.get(STORAGE_SECRET_ENV) or secrets.token_urlsafe(32)
    ui.run(reload=False, title="Tasklight", storage_secret=secret)


if __name__ == "__main__":
    if os.environ.get("NICEGUI_USER_SIMULATION"):
        simulate()
    else:
        sys.exit(main())
