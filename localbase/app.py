"""The gateway: one ASGI app with the routes the CLI's Kong exposes (protocol doc §1.1)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from localbase.auth import AuthConfig, create_auth_app
from localbase.database import Database
from localbase.keys import ProjectKeys
from localbase.rest import create_rest_app

logger = logging.getLogger(__name__)


def create_app(
    database: Database,
    keys: ProjectKeys,
    *,
    realtime: Any = None,
    auth_config: AuthConfig | None = None,
) -> Starlette:
    """Return the gateway app: ``/auth/v1``, ``/rest/v1`` and ``/realtime/v1/websocket``.

    Args:
        database: pool the services run their transactions on.
        keys: the project's keys.
        realtime: a started ``RealtimeService``; without one the websocket is not served.
        auth_config: auth settings (token lifetime, ...).
    """
    routes: list[BaseRoute] = [Route("/", _root, methods=["GET"])]
    if realtime is not None:
        routes.append(WebSocketRoute("/realtime/v1/websocket", realtime.websocket_endpoint))
    routes += [
        Mount("/auth/v1", app=create_auth_app(database, keys, auth_config or AuthConfig())),
        Mount("/rest/v1", app=create_rest_app(database, keys)),
    ]
    middleware = [
        # Supabase answers any origin; browsers only see what the key allows anyway.
        Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Content-Range", "X-Supabase-Api-Version", "x-sb-error-code"],
        )
    ]
    return Starlette(routes=routes, middleware=[Middleware(_ContainErrors), *middleware])


class _ContainErrors:
    """Keep one request's unexpected error inside that request.

    Starlette answers an unhandled exception with a 500 and then re-raises it, so uvicorn
    logs it a second time and drops the keep-alive connection, failing the client's next
    request on it too. Here it is logged once and the connection stays usable.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            logger.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=exc)
            if not started:
                body = {"code": "unexpected_failure", "message": "unexpected server error"}
                await JSONResponse(body, status_code=500)(scope, receive, send)


async def _root(request: Request) -> Response:
    return JSONResponse({"name": "localbase", "services": ["auth/v1", "rest/v1", "realtime/v1"]})
