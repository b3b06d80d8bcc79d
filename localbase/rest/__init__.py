"""``/rest/v1``: PostgREST's surface as postgrest-py sends it (protocol doc §3)."""

from localbase.rest.service import create_rest_app

__all__ = ["create_rest_app"]
