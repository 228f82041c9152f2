"""`authority migrate --check`: servers that do not migrate wait for the one migration.

On SQLite and on a PostgreSQL database of the test's own: not current when empty or one
revision behind, current at head; nothing is created or changed by the check.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from authority.cli import main
from tests.conftest import PG_ADMIN_URL, _pg_url

NOT_CURRENT = "error: database schema is not up to date: run `authority migrate`\n"


@pytest.fixture(autouse=True)
def _no_settings_in_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AUTHORITY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no config/authority.toml


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "migrate", "--check"])
    out, err = capsys.readouterr()
    return code, out, err


def test_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert _check(capsys, "--data-dir", str(data)) == (1, "", NOT_CURRENT)
    assert not (data / "authority.db").exists()  # the check opened nothing

    assert main(["--data-dir", str(data), "migrate", "0005_call_recordings"]) == 0
    assert _check(capsys, "--data-dir", str(data))[0] == 1

    assert main(["--data-dir", str(data), "migrate"]) == 0
    capsys.readouterr()
    assert _check(capsys, "--data-dir", str(data)) == (0, "database schema is up to date\n", "")


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    name = f"authority_check_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_on_postgres(
    fresh_postgres: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTHORITY_DATABASE_URL", fresh_postgres)
    assert _check(capsys) == (1, "", NOT_CURRENT)

    assert main(["migrate", "0005_call_recordings"]) == 0
    assert _check(capsys)[0] == 1

    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert _check(capsys) == (0, "database schema is up to date\n", "")


def test_an_unreachable_database_is_named_without_its_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "AUTHORITY_DATABASE_URL", "postgresql://authority:hunter2@127.0.0.1:1/authority"
    )
    code, _out, err = _check(capsys)
    assert code == 3  # unavailable, as the exit table says; 1 is "not up to date"
    assert err.startswith("error: database unreachable (")
    assert "hunter2" not in err
