"""``/auth/v1``: the subset of GoTrue the app needs (protocol doc §2).

Anonymous sign-in, refresh-token rotation, get user, sign-out, plus ``/health`` and
``/settings``. Errors use GoTrue's 2024-01-01 body ``{"code", "message"}`` with the
``X-Supabase-Api-Version`` header echoed, which the client needs to read ``code``.
"""

from localbase.auth.service import AuthConfig, create_auth_app

__all__ = ["AuthConfig", "create_auth_app"]
