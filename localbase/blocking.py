"""Run blocking calls off the event loop, even while the interpreter is shutting down.

`asyncio.to_thread` uses the loop's default executor, and concurrent.futures refuses new work
once interpreter shutdown has begun, which is exactly when atexit handlers stop the stack.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def run_blocking(func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in a worker thread and await its result."""
    try:
        return await asyncio.to_thread(func, *args)
    except RuntimeError as exc:
        if "shutdown" not in str(exc):
            raise
    return await _run_in_own_thread(func, *args)


async def _run_in_own_thread(func: Callable[..., T], *args: Any) -> T:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = func(*args)
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, name="localbase-blocking", daemon=True).start()
    return await done
