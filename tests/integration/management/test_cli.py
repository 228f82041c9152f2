"""``authority admin``: the first admin key, once; operator keys; revocation."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from authority.cli import main
from authority.secrets import SecretHasher
from authority.settings import Settings
from authority.storage.database import make_engine
from authority.storage.schema import api_keys


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads AUTHORITY_* like the server: point it at this test's backend."""
    values = {
        "data_dir": str(settings.data_dir),
        "secret_key": settings.secret_key,
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "redis_prefix": settings.redis_prefix,
        "auto_migrate": "false",
    }
    for name, value in values.items():
        if value is not None:
            monkeypatch.setenv(f"AUTHORITY_{name.upper()}", str(value))
    return settings


def stored_keys(settings: Settings) -> list[tuple[str, str, str, int | None]]:
    async def query() -> list[tuple[str, str, str, int | None]]:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    select(
                        api_keys.c.id, api_keys.c.role, api_keys.c.key_hash, api_keys.c.revoked_at
                    )
                )
                return [(row.id, row.role, row.key_hash, row.revoked_at) for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(query())


def test_bootstrap_prints_the_key_once_and_stores_its_hash(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin", "bootstrap"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("ak_")
    assert key not in err
    assert env.secret_key is not None
    hasher = SecretHasher(env.secret_key.encode())
    [(key_id, role, key_hash, revoked)] = stored_keys(env)
    assert role == "admin"
    assert key_hash == hasher.hash(key)
    assert revoked is None
    assert key_id in err


def test_bootstrap_refuses_a_second_admin_key_unless_forced(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin", "bootstrap"]) == 0
    capsys.readouterr()
    assert main(["admin", "bootstrap"]) != 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "already exists" in err
    assert len(stored_keys(env)) == 1
    assert main(["admin", "bootstrap", "--force-new"]) == 0
    assert len(stored_keys(env)) == 2


def test_bootstrap_after_the_admin_key_was_revoked(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin", "bootstrap"]) == 0
    [(key_id, *_)] = stored_keys(env)
    assert main(["admin", "revoke-key", key_id]) == 0
    assert main(["admin", "bootstrap"]) == 0


def test_create_list_and_revoke_operator_keys(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin", "create-key", "--role", "auditor", "--label", "ci"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("ak_")
    assert main(["admin", "list-keys"]) == 0
    listing = capsys.readouterr().out
    assert "auditor" in listing
    assert "ci" in listing
    assert key not in listing
    [(key_id, role, *_)] = stored_keys(env)
    assert role == "auditor"
    assert main(["admin", "revoke-key", key_id]) == 0
    assert stored_keys(env)[0][3] is not None
    assert main(["admin", "revoke-key", "key_" + "0" * 32]) != 0


def test_owner_keys_are_not_made_by_the_cli(env: Settings) -> None:
    with pytest.raises(SystemExit):
        main(["admin", "create-key", "--role", "owner"])


def test_labels_are_checked(env: Settings) -> None:
    with pytest.raises(SystemExit):
        main(["admin", "create-key", "--role", "admin", "--label", "bad\x00label"])
    assert stored_keys(env) == []
