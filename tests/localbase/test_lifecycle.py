"""Start, stop and restart of a whole localbase on its own data dir."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from localbase.errors import LocalbaseError
from localbase.server import LocalbaseThread

pytestmark = pytest.mark.integration


def _migration_rows(runner: LocalbaseThread) -> list[tuple[str, str]]:
    async def fetch() -> list[tuple[str, str]]:
        from localbase.database import parse_dsn

        conn = await asyncpg.connect(**parse_dsn(runner.postgres.dsn))
        try:
            rows = await conn.fetch(
                "select version, name from supabase_migrations.schema_migrations order by version"
            )
            await conn.execute("insert into auth.users (id) values (gen_random_uuid())")
            return [(row["version"], row["name"]) for row in rows]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_data_dir_survives_a_restart_and_migrations_run_once(tmp_path: Path) -> None:
    first = LocalbaseThread(tmp_path, port=0)
    first.start()
    try:
        before = _migration_rows(first)
        keys = first.keys
    finally:
        first.stop()
    assert not first.postgres.is_running

    second = LocalbaseThread(tmp_path, port=0)
    second.start()
    try:
        after = _migration_rows(second)
        same_keys = second.keys == keys
    finally:
        second.stop()

    assert before == after and before
    assert same_keys


def test_port_in_use_is_a_clear_error_and_postgres_is_stopped(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    runner = LocalbaseThread(tmp_path, port=port)
    try:
        with pytest.raises(LocalbaseError, match="already in use"):
            runner.start()
    finally:
        blocker.close()
        runner.stop()

    assert not runner.postgres.is_running


def test_a_failing_migration_names_its_file(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "20250101000000_ok.sql").write_text("create table public.ok (id int);")
    (migrations / "20250102000000_broken.sql").write_text("create tabel nope;")
    runner = LocalbaseThread(tmp_path / "data", port=0, migrations_dir=migrations)

    with pytest.raises(LocalbaseError, match=r"20250102000000_broken\.sql"):
        runner.start()

    assert not runner.postgres.is_running


def test_stop_is_idempotent(tmp_path: Path) -> None:
    runner = LocalbaseThread(tmp_path, port=0)
    runner.start()

    runner.stop()
    runner.stop()

    assert not runner.postgres.is_running


def test_postgres_stops_when_a_process_exits_without_calling_stop(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from localbase.server import LocalbaseThread\n"
        f"runner = LocalbaseThread({str(tmp_path)!r}, port=0)\n"
        "runner.start()\n"
        "sys.exit(3)\n"
    )
    root = Path(__file__).resolve().parents[2]

    finished = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )

    assert finished.returncode == 3, finished.stderr
    assert "cannot schedule new futures" not in finished.stderr
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()


def test_a_second_start_on_the_same_data_dir_leaves_the_first_running(tmp_path: Path) -> None:
    first = LocalbaseThread(tmp_path, port=0)
    first.start()
    try:
        second = LocalbaseThread(tmp_path, port=0)
        with pytest.raises(LocalbaseError, match="in use"):
            second.start()

        async def count_tasks() -> int:
            from localbase.database import parse_dsn

            conn = await asyncpg.connect(**parse_dsn(first.postgres.dsn))
            try:
                return await conn.fetchval("select count(*) from public.tasks")
            finally:
                await conn.close()

        assert asyncio.run(count_tasks()) == 0
    finally:
        first.stop()
