"""``authority control``: the owner's controls from a shell, against a running authority."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette

from authority.cli import main
from tests.revocation_support import is_active, issue, serving
from tests.support import World


async def run(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_owner_controls_from_the_command_line(
    world: World, app: Starlette, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(world.owner_key + "\n")
    common = ["--api-key-file", str(key_file)]
    token = await issue(world)
    async with serving(app) as url:
        assert (
            await run(
                "control", "quarantine", world.agent_id, "--reason", "odd", "--url", url, *common
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out)["status"] == "quarantined"
        assert await is_active(world, token) is False

        assert await run("control", "release", world.agent_id, "--url", url, *common) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "active"

        token = await issue(world)
        assert (
            await run("control", "revoke-delegation", world.delegation_id, "--url", url, *common)
            == 0
        )
        assert json.loads(capsys.readouterr().out)["status"] == "revoked"
        assert await is_active(world, token) is False

        await world.delegate()
        token = await issue(world)
        assert (
            await run("control", "kill", world.owner_id, "--reason", "stop", "--url", url, *common)
            == 0
        )
        killed = json.loads(capsys.readouterr().out)
        assert killed["quarantined_agents"] == [world.agent_id]
        assert await is_active(world, token) is False

        # Refusals go to stderr with status 1: another owner's agent does not exist.
        assert (
            await run("control", "quarantine", "agt_nobody", "--reason", "x", "--url", url, *common)
            == 1
        )
        assert "HTTP 404" in capsys.readouterr().err


async def test_the_reason_is_required_where_the_api_requires_it(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k")
    with pytest.raises(SystemExit):
        await run("control", "kill", "own_x", "--api-key-file", str(key_file))


async def test_a_missing_key_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run(
        "control",
        "release",
        "agt_x",
        "--api-key-file",
        str(tmp_path / "nope"),
        "--url",
        "http://127.0.0.1:9",
    )
    assert code == 2  # a usage error (docs/cli.md), before anything is sent
    assert "error:" in capsys.readouterr().err
