"""Shared fixtures: one embedded localbase per test session, official clients per test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from supabase import AsyncClient, acreate_client

from localbase.server import LocalbaseThread


@pytest.fixture(scope="session")
def localbase(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalbaseThread]:
    """A running localbase (postgres + gateway) on a temporary data dir and a free port.

    Use ``localbase.url`` and ``localbase.keys`` (anon_key, service_role_key,
    publishable_key, secret_key, jwt_secret); ``localbase.postgres.dsn`` reaches the
    database as the superuser.
    """
    data_dir: Path = tmp_path_factory.mktemp("localbase")
    runner = LocalbaseThread(data_dir, host="127.0.0.1", port=0)
    runner.start(timeout=120)
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture
async def anon_client(localbase: LocalbaseThread) -> AsyncIterator[AsyncClient]:
    """An official async client with the anon key (no user signed in yet)."""
    client = await acreate_client(localbase.url, localbase.keys.anon_key)
    try:
        yield client
    finally:
        await _close(client)


@pytest.fixture
async def service_client(localbase: LocalbaseThread) -> AsyncIterator[AsyncClient]:
    """An official async client with the service_role key (bypasses RLS)."""
    client = await acreate_client(localbase.url, localbase.keys.service_role_key)
    try:
        yield client
    finally:
        await _close(client)


async def _close(client: AsyncClient) -> None:
    """Stop the auth refresh timer, close realtime and the HTTP clients."""
    timer = getattr(client.auth, "_refresh_token_timer", None)
    if timer is not None:
        timer.cancel()
    with contextlib.suppress(Exception):  # not connected
        await client.realtime.close()
    if getattr(client, "_postgrest", None) is not None:
        await client._postgrest.aclose()
    await client.auth.close()
