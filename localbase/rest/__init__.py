"""``/rest/v1``: the subset of PostgREST the app and the worker use (protocol doc §3)."""

from localbase.rest.service import create_rest_app

__all__ = ["create_rest_app"]
