"""Configuration read from the environment and an optional `.env` file."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LOCALBASE_PORT = 54321
DEFAULT_UI_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DEFAULT_LEASE_SECONDS = 30
DEFAULT_POLL_SECONDS = 5.0


class Settings(BaseSettings):
    """Where the Supabase project is and which keys to use.

    Environment names are the upper-case field names (`SUPABASE_URL`, ...). Keys are kept
    as `SecretStr`, so printing or logging a `Settings` never shows them.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    supabase_url: str | None = None
    supabase_publishable_key: SecretStr | None = None
    supabase_anon_key: SecretStr | None = None
    supabase_secret_key: SecretStr | None = None
    supabase_service_role_key: SecretStr | None = None
    # Worker: a task whose worker stops renewing is reclaimed this long after the last renewal.
    worker_lease_seconds: int = Field(DEFAULT_LEASE_SECONDS, ge=2, le=3600)
    worker_poll_seconds: float = Field(DEFAULT_POLL_SECONDS, gt=0, le=300)

    @property
    def public_key(self) -> str | None:
        """The key a browser session uses: the publishable key, else the legacy anon key."""
        return _first(self.supabase_publishable_key, self.supabase_anon_key)

    @property
    def secret_key(self) -> str | None:
        """The key the worker uses: the secret key, else the legacy service role key."""
        return _first(self.supabase_secret_key, self.supabase_service_role_key)

    @property
    def is_configured(self) -> bool:
        """True when a project URL and a public key are both given."""
        return bool(self.supabase_url and self.public_key)


def _first(*values: SecretStr | None) -> str | None:
    for value in values:
        if value is not None and value.get_secret_value().strip():
            return value.get_secret_value().strip()
    return None
