"""PostgREST endpoints (placeholder while the full implementation lands)."""

from __future__ import annotations

from starlette.applications import Starlette

from localbase.database import Database
from localbase.keys import ProjectKeys


def create_rest_app(database: Database, keys: ProjectKeys) -> Starlette:
    return Starlette(routes=[])
