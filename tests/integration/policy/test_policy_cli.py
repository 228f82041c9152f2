"""``authority policy show|versions|set|activate`` against a running authority."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette

from authority.cli import main
from tests.revocation_support import serving
from tests.support import World

from .support import FORBID_CREATE


async def run(*argv: str) -> int:
    # The CLI runs its own client; off the event loop that serves the authority.
    return await asyncio.to_thread(main, list(argv))


async def test_set_list_show_and_roll_back(
    world: World,
    app: Starlette,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHORITY_API_KEY", world.admin)
    first, second = tmp_path / "first.cedar", tmp_path / "second.cedar"
    first.write_text(FORBID_CREATE)
    second.write_text("// nothing forbidden\x1b[2J\n")
    async with serving(app) as url:
        monkeypatch.setenv("AUTHORITY_URL", url)
        assert await run("policy", "set", str(first), "--comment", "no issues in web") == 0
        assert capsys.readouterr().out == "1\n"
        assert await run("policy", "set", str(second)) == 0
        assert capsys.readouterr().out == "2\n"
        assert await run("policy", "versions") == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split("\t")[:2] == ["2", "true"]
        assert lines[1].split("\t")[-1] == "no issues in web"
        assert await run("policy", "show") == 0
        shown = capsys.readouterr()
        assert "\x1b" not in shown.out and "\\u001b" in shown.out  # escaped, never acted on
        assert "policy version 2" in shown.err
        assert await run("policy", "activate", "1") == 0
        capsys.readouterr()
        assert await run("policy", "show", "--json") == 0
        assert json.loads(capsys.readouterr().out)["version"] == 1
        assert (await world.exchange()).status_code == 400
        assert await run("policy", "activate", "7") == 1
        assert await run("policy", "activate", "x") == 2
        bad = tmp_path / "bad.cedar"
        bad.write_text("forbid(principal, action, resource) when { secretword };")
        assert await run("policy", "set", str(bad)) == 1
        assert "secretword" not in capsys.readouterr().err
        monkeypatch.setenv("AUTHORITY_API_KEY", world.owner_key)
        assert await run("policy", "set", str(first)) == 1
