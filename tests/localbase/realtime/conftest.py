"""Fixtures of the realtime integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from supabase import AsyncClient, acreate_client

from localbase.server import LocalbaseThread
from tests.conftest import _close


@pytest.fixture
async def clients(localbase: LocalbaseThread) -> AsyncIterator[Callable[..., Any]]:
    """Factory of official clients: ``await make()`` signs in a new anonymous user."""
    made: list[AsyncClient] = []

    async def make(*, service: bool = False) -> AsyncClient:
        key = localbase.keys.service_role_key if service else localbase.keys.anon_key
        client = await acreate_client(localbase.url, key)
        made.append(client)
        if not service:
            session = (await client.auth.sign_in_anonymously()).session
            await client.realtime.set_auth(session.access_token)
        return client

    yield make
    for client in made:
        await _close(client)
