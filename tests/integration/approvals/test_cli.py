"""``authority approvals``: an owner lists, approves and denies from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from authority.approvals.requests import approval_id
from authority.cli import main
from tests.revocation_support import serving
from tests.support import World

from .support import RISKY_TOOL, ask_pending, error_of, poll, with_risky_tool


async def run(*argv: str) -> int:
    # The CLI runs its own client; off the event loop that serves the authority.
    return await asyncio.to_thread(main, list(argv))


async def test_list_approve_and_deny(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await with_risky_tool(world)
    approve_me = await ask_pending(world)
    deny_me = await ask_pending(world)
    key_file = tmp_path / "owner.key"
    key_file.write_text(world.owner_key + "\n")
    async with serving(world.client._transport.app) as url:  # type: ignore[attr-defined]
        common = ["--url", url, "--api-key-file", str(key_file)]
        assert await run("approvals", "list", *common) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 2
        assert {line.split("\t")[0] for line in lines} == {
            approval_id(world.services, a) for a in (approve_me, deny_me)
        }
        assert all(line.split("\t")[1] == "pending" for line in lines)
        assert all("deploy.run" in line for line in lines)
        ids = [str(approval_id(world.services, a)) for a in (approve_me, deny_me)]
        assert await run("approvals", "approve", ids[0], "--reason", "ok", *common) == 0
        assert capsys.readouterr().out.strip() == f"{ids[0]}\tapproved"
        assert await run("approvals", "deny", ids[1], *common) == 0
        assert capsys.readouterr().out.strip() == f"{ids[1]}\tdenied"
        assert await run("approvals", "deny", ids[1], *common) == 1
        assert "HTTP 409" in capsys.readouterr().err
        assert await run("approvals", "list", "--status", "all", *common) == 0
        assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert (await poll(world, approve_me)).status_code == 200
    assert error_of(await poll(world, deny_me)) == "access_denied"


async def test_a_missing_key_file_is_an_error(tmp_path: Path) -> None:
    code = await run(
        "approvals", "list", "--url", "http://127.0.0.1:9", "--api-key-file", str(tmp_path / "x")
    )
    assert code == 2


async def test_what_a_line_shows_cannot_act_on_the_terminal(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await with_risky_tool(world)
    # A delegation's intent may hold a newline (a second, forged line) and a right-to-left
    # override (which would reorder what the owner reads).
    scope = [{"tool": RISKY_TOOL, "resources": ["prod/*"], "actions": ["run"]}]
    await world.delegate(scope=scope, intent="deploy\nappr_forged\tapproved\u202egpj.exe")
    await ask_pending(world)
    key_file = tmp_path / "owner.key"
    key_file.write_text(world.owner_key + "\n")
    async with serving(world.client._transport.app) as url:  # type: ignore[attr-defined]
        assert await run("approvals", "list", "--url", url, "--api-key-file", str(key_file)) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert "\u202e" not in line
    assert line.split("\t")[6] == "deploy\\u000aappr_forged approved\\u202egpj.exe"
