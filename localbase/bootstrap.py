"""Supabase's database conventions, then the project's migrations.

:data:`BOOTSTRAP_SQL` is the subset of supabase/postgres' init scripts and GoTrue's migrations
that the clients, the policies and the migrations rely on (protocol doc §5). It is idempotent
and runs on every start. Then each ``supabase/migrations/<version>_<name>.sql`` not yet recorded
in ``supabase_migrations.schema_migrations`` runs once, in name order, in its own transaction,
and is recorded the way the Supabase CLI records it, so the same files can be pushed to a
hosted project with ``supabase db push``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from localbase.errors import MigrationError

logger = logging.getLogger(__name__)

DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "supabase" / "migrations"
# The CLI's pattern for migration files (pkg/migration/file.go).
MIGRATION_FILE = re.compile(r"^([0-9]+)_(.*)\.sql$")

BOOTSTRAP_SQL = r"""
-- Roles (supabase/postgres 00000000000000-initial-schema.sql)
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
grant anon, authenticated, service_role to authenticator;

-- Schemas and default grants (00000000000000-initial-schema.sql, 00000000000003-post-setup.sql)
create schema if not exists extensions;
grant usage on schema public to postgres, anon, authenticated, service_role;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
alter default privileges in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;

-- auth schema (00000000000001-auth-schema.sql, GoTrue migrations); only what we use
create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create table if not exists auth.users (
  instance_id uuid,
  id uuid primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  phone text,
  phone_confirmed_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb not null default '{}'::jsonb,
  raw_user_meta_data jsonb not null default '{}'::jsonb,
  is_anonymous boolean not null default false,
  is_sso_user boolean not null default false,
  banned_until timestamptz,
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists auth.sessions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  aal text not null default 'aal1',
  not_after timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists sessions_user_id_idx on auth.sessions (user_id);

create table if not exists auth.refresh_tokens (
  id bigserial primary key,
  token varchar(255) not null unique,
  user_id uuid not null references auth.users (id) on delete cascade,
  session_id uuid not null references auth.sessions (id) on delete cascade,
  parent varchar(255),
  revoked boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists refresh_tokens_session_id_idx on auth.refresh_tokens (session_id);

-- email + password users (GoTrue 20231117164230_add_id_pkey_identities and later)
create unique index if not exists users_email_partial_key on auth.users (email)
  where email is not null and email <> '' and not is_sso_user;
create table if not exists auth.identities (
  id uuid primary key default gen_random_uuid(),
  provider_id text not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  identity_data jsonb not null,
  provider text not null,
  last_sign_in_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  email text generated always as (lower(identity_data ->> 'email')) stored,
  unique (provider_id, provider)
);
create index if not exists identities_user_id_idx on auth.identities (user_id);

-- auth helpers (GoTrue 20220224000811_update_auth_functions, 20220531120530_add_auth_jwt_function)
create or replace function auth.uid() returns uuid
  language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
  language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.email() returns text
  language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
  language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt()
  to anon, authenticated, service_role;

-- Realtime's publication starts empty; tables join it in migrations
do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

-- The CLI's migration history table
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text primary key,
  statements text[],
  name text
);
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


def list_migrations(migrations_dir: Path) -> list[Migration]:
    """Return the migration files in name order; other files are skipped, as the CLI does."""
    if not migrations_dir.is_dir():
        return []
    migrations = []
    for path in sorted(migrations_dir.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if match is None:
            logger.warning("skipping %s: not named <timestamp>_<name>.sql", path.name)
            continue
        migrations.append(Migration(version=match[1], name=match[2], path=path))
    return migrations


async def bootstrap(
    conn: asyncpg.Connection, migrations_dir: Path = DEFAULT_MIGRATIONS_DIR
) -> list[str]:
    """Apply Supabase's conventions and the pending migrations; return the applied file names.

    Raises:
        MigrationError: the bootstrap or a migration failed; earlier migrations stay applied,
            the failing one is rolled back, later ones are not tried.
    """
    # Serialise concurrent starts on one cluster (a test and a restarted server, say).
    await conn.execute("select pg_advisory_lock(hashtext('localbase.bootstrap'))")
    try:
        try:
            async with conn.transaction():
                await conn.execute(BOOTSTRAP_SQL)
        except asyncpg.PostgresError as exc:
            raise MigrationError(f"bootstrap failed: {_describe(exc)}") from exc
        return await _apply_migrations(conn, migrations_dir)
    finally:
        await conn.execute("select pg_advisory_unlock(hashtext('localbase.bootstrap'))")


async def _apply_migrations(conn: asyncpg.Connection, migrations_dir: Path) -> list[str]:
    rows = await conn.fetch("select version from supabase_migrations.schema_migrations")
    applied_versions = {row["version"] for row in rows}
    applied: list[str] = []
    for migration in list_migrations(migrations_dir):
        if migration.version in applied_versions:
            continue
        sql = migration.path.read_text(encoding="utf-8")
        logger.info("applying migration %s", migration.path.name)
        try:
            async with conn.transaction():
                # No parameters: asyncpg uses the simple query protocol, which runs a whole
                # file of statements (and dollar-quoted bodies) in one go.
                await conn.execute(sql)
                await conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, statements, name)"
                    " values ($1, $2, $3)",
                    migration.version,
                    [sql],
                    migration.name,
                )
        except asyncpg.PostgresError as exc:
            raise MigrationError(
                f"migration {migration.path.name} failed: {_describe(exc)}"
            ) from exc
        applied.append(migration.path.name)
    return applied


def _describe(exc: asyncpg.PostgresError) -> str:
    text = f"{exc.sqlstate}: {exc}"
    detail = getattr(exc, "detail", None)
    if detail:
        text += f" ({detail})"
    position = getattr(exc, "position", None)
    if position:
        text += f" at character {position}"
    return text
