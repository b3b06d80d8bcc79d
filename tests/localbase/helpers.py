"""Helpers shared by the localbase integration tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from supabase import AsyncClient, acreate_client

from localbase.server import LocalbaseThread


@contextlib.asynccontextmanager
async def signed_in_user(localbase: LocalbaseThread) -> AsyncIterator[AsyncClient]:
    """An official client signed in as a fresh anonymous user."""
    client = await acreate_client(localbase.url, localbase.keys.publishable_key)
    await client.auth.sign_in_anonymously()
    await asyncio.sleep(0)  # the token reaches the sub-clients through a scheduled task
    try:
        yield client
    finally:
        timer = getattr(client.auth, "_refresh_token_timer", None)
        if timer is not None:
            timer.cancel()
        if getattr(client, "_postgrest", None) is not None:
            await client._postgrest.aclose()
        await client.auth.close()
