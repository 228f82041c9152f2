"""``authority keys list`` and ``authority keys rotate``, run as an operator would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from authority.cli import main
from authority.settings import Settings
from authority.storage.schema import ledger_entries


@pytest.fixture
def operator_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings as the AUTHORITY_* variables the command reads."""
    for name in settings.model_fields_set:
        monkeypatch.setenv(f"AUTHORITY_{name.upper()}", str(getattr(settings, name)))
    return settings


def listed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["keys", "list", "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def ledger_bodies(settings: Settings) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_async_engine(settings.sqlalchemy_url)
        try:
            async with engine.connect() as conn:
                query = select(ledger_entries.c.body).where(ledger_entries.c.kind == "key_rotated")
                return [orjson.loads(body) for body in (await conn.scalars(query)).all()]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_rotate_schedules_a_next_key(
    operator_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    first = listed(capsys)
    assert sorted((k["purpose"], k["status"]) for k in first) == [
        ("ledger", "active"),
        ("token", "active"),
    ]
    assert main(["keys", "rotate"]) == 0
    out = capsys.readouterr().out
    keys = listed(capsys)
    (new,) = [k for k in keys if k["status"] == "next"]
    assert new["kid"] in out
    assert new["purpose"] == "token"
    assert new["activated_at"] == new["created_at"] + operator_env.key_activation_delay
    # The rotation is in the ledger, with who asked for it.
    (entry,) = [b for b in ledger_bodies(operator_env) if b["kid"] == new["kid"]]
    assert entry["actor"].startswith("cli")
    token_active = [k["kid"] for k in first if k["purpose"] == "token"]
    assert entry["previous_kid"] == token_active[0]


def test_rotate_ledger_key(operator_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "rotate", "--purpose", "ledger"]) == 0
    capsys.readouterr()
    assert [k["purpose"] for k in listed(capsys) if k["status"] == "next"] == ["ledger"]


def test_a_pending_rotation_is_reported_not_repeated(
    operator_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "rotate"]) == 0
    assert main(["keys", "rotate"]) == 1
    assert "already scheduled" in capsys.readouterr().err
    assert len([k for k in listed(capsys) if k["status"] == "next"]) == 1


def test_list_prints_a_table(operator_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["PURPOSE", "STATUS", "ALG", "KID"]
    assert len(lines) == 3
