"""The lifecycle from a shell, against a running authority: owners, their keys, resource
servers, tools, agents (a key pair made by the command), delegations; ``--json`` on every
command; one set of exit codes; a reading command never makes a database."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from authority.cli import build_parser, main
from tests.revocation_support import serving
from tests.support import World


async def run(*argv: str) -> int:
    # The CLI runs its own client; off the event loop that serves the authority.
    return await asyncio.to_thread(main, list(argv))


def output(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out, captured.err


async def test_the_lifecycle_from_the_command_line(
    world: World,
    app: Starlette,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHORITY_API_KEY", world.admin)
    async with serving(app) as url:
        monkeypatch.setenv("AUTHORITY_URL", url)
        # An admin: a resource server (its secret on stderr, once), a tool, an owner.
        assert (
            await run("servers", "create", "--name", "Docs", "--audience", "https://docs.example")
            == 0
        )
        server_id, err = output(capsys)
        server_id = server_id.strip()
        assert server_id.startswith("rs_")
        assert "client secret" in err
        assert (
            await run(
                "tools",
                "create",
                "--name",
                "docs.page.read",
                "--server",
                server_id,
                "--action",
                "read",
                "--read-action",
                "read",
                "--risk-tier",
                "0",
                "--json",
            )
            == 0
        )
        tool = json.loads(output(capsys)[0])
        assert (tool["name"], tool["read_actions"], tool["risk_tier"]) == (
            "docs.page.read",
            ["read"],
            0,
        )
        assert await run("owners", "create", "--name", "Grace", "--email", "g@example.com") == 0
        owner_id = output(capsys)[0].strip()
        assert await run("owners", "keys", "create", owner_id, "--label", "laptop") == 0
        owner_key = output(capsys)[0].strip()
        assert await run("owners", "list", "--json") == 0
        owners = json.loads(output(capsys)[0])
        assert owner_id in {o["id"] for o in owners}

        # The owner, with the key from a file: an agent whose key pair the command makes.
        key_file = tmp_path / "owner.key"
        key_file.write_text(owner_key + "\n")
        monkeypatch.delenv("AUTHORITY_API_KEY")
        common = ["--api-key-file", str(key_file)]
        assert await run("agents", "create", "--name", "reader", "--generate-key", *common) == 0
        printed, err = output(capsys)
        private = json.loads(printed)
        assert private["d"] and private["kid"]
        agent_id = err.split("created agent ")[1].split()[0]
        assert await run("agents", "show", agent_id, "--json", *common) == 0
        agent = json.loads(output(capsys)[0])
        [public] = agent["jwks"]["keys"]
        assert public["kid"] == private["kid"]
        assert "d" not in public
        assert agent["autonomy_level"] == 0

        jwk_file = tmp_path / "second.jwk"
        assert (
            await run(
                "agents",
                "create",
                "--name",
                "second",
                "--generate-key",
                str(jwk_file),
                "--key-type",
                "p-256",
                "--kid",
                "second-1",
                *common,
            )
            == 0
        )
        second_id = output(capsys)[0].strip()
        assert json.loads(jwk_file.read_text())["kid"] == "second-1"
        # Never over an existing file, and nothing registered when refused.
        assert (
            await run(
                "agents", "create", "--name", "third", "--generate-key", str(jwk_file), *common
            )
            == 2
        )
        assert "exists" in output(capsys)[1]

        assert await run("agents", "autonomy", second_id, "2", "--reason", "vetted", *common) == 0
        assert output(capsys)[0].strip().endswith("\t2")

        credential_file = tmp_path / "delegation.jwt"
        assert (
            await run(
                "delegations",
                "create",
                "--agent",
                agent_id,
                "--intent",
                "read the docs",
                "--tool",
                "docs.page.read",
                "--resource",
                "docs/**",
                "--action",
                "read",
                "--credential-file",
                str(credential_file),
                *common,
            )
            == 0
        )
        delegation_id = output(capsys)[0].strip()
        assert delegation_id.startswith("dlg_")
        assert credential_file.read_text().count(".") == 2
        assert await run("delegations", "list", "--agent", agent_id, "--json", *common) == 0
        [listed] = json.loads(output(capsys)[0])
        assert listed["id"] == delegation_id
        assert listed["scope"] == [
            {"tool": "docs.page.read", "resources": ["docs/**"], "actions": ["read"]}
        ]
        assert await run("delegations", "revoke", delegation_id, "--json", *common) == 0
        assert json.loads(output(capsys)[0])["status"] == "revoked"

        # Refusals: one line, the HTTP status and the RFC error; exit 1.
        assert await run("agents", "show", "agt_nobody", *common) == 1
        [line] = output(capsys)[1].splitlines()
        assert line.startswith("error: HTTP 404")
        # An owner cannot register tools.
        assert await run("tools", "list", *common) == 0
        output(capsys)
        assert await run("owners", "create", "--name", "Eve", *common) == 1
        assert "HTTP 403" in output(capsys)[1]


async def test_key_and_credential_files_are_new_and_made_before_the_call(
    world: World,
    app: Starlette,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHORITY_API_KEY", world.owner_key)
    async with serving(app) as url:
        monkeypatch.setenv("AUTHORITY_URL", url)

        async def agents() -> set[str]:
            assert await run("agents", "list", "--json") == 0
            return {agent["id"] for agent in json.loads(output(capsys)[0])}

        async def delegations() -> set[str]:
            assert await run("delegations", "list", "--json") == 0
            return {item["id"] for item in json.loads(output(capsys)[0])}

        # A key file that cannot be made: refused before any agent is registered.
        registered = await agents()
        missing = tmp_path / "no-such-directory" / "agent.jwk"
        assert await run("agents", "create", "--name", "lost", "--generate-key", str(missing)) == 2
        [line] = output(capsys)[1].splitlines()
        assert line.startswith(f"error: cannot create {missing}")
        assert await agents() == registered
        # The API refuses: the file made for the key is removed again.
        key_file = tmp_path / "refused.jwk"
        assert await run("agents", "create", "--name", " ", "--generate-key", str(key_file)) == 1
        output(capsys)
        assert not key_file.exists()
        assert await agents() == registered

        delegate = [
            "delegations",
            "create",
            "--agent",
            world.agent_id,
            "--intent",
            "triage",
            "--tool",
            "github.issues.create",
            "--resource",
            "acme/web",
            "--action",
            "create",
            "--credential-file",
        ]
        granted = await delegations()
        # An existing file (mode 0644 here) is never written to, nor a symlink's target.
        readable = tmp_path / "readable.jwt"
        readable.write_text("kept\n")
        readable.chmod(0o644)
        target = tmp_path / "target"
        link = tmp_path / "link.jwt"
        link.symlink_to(target)
        for path in (readable, link):
            assert await run(*delegate, str(path)) == 2
            [line] = output(capsys)[1].splitlines()
            assert line.startswith("error: ") and str(path) in line
        assert readable.read_text() == "kept\n"
        assert not target.exists()
        assert await delegations() == granted

        # With a file and --json, the credential is in the file only.
        credential_file = tmp_path / "delegation.jwt"
        assert await run(*delegate, str(credential_file), "--json") == 0
        printed = json.loads(output(capsys)[0])
        assert "credential" not in printed
        assert printed["id"].startswith("dlg_")
        assert credential_file.read_text().count(".") == 2
        assert credential_file.read_text().split(".")[0] not in json.dumps(printed)
        assert credential_file.stat().st_mode & 0o777 == 0o600


async def test_a_note_shows_a_name_escaped(
    world: World, app: Starlette, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(app) as url:
        common = ["--url", url, "--api-key", world.owner_key]
        # A right-to-left override would turn what the note says around.
        assert (
            await run("agents", "create", "--name", "bot\u202eexe.", "--generate-key", *common) == 0
        )
    err = output(capsys)[1]
    assert "\u202e" not in err
    assert "(bot\\u202eexe.)" in err


async def test_connection_errors_name_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHORITY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AUTHORITY_API_KEY", "ak_x")
    assert await run("agents", "list") == 3
    [line] = output(capsys)[1].splitlines()
    assert "http://127.0.0.1:9" in line
    monkeypatch.delenv("AUTHORITY_API_KEY")
    assert await run("agents", "list") == 2
    assert "AUTHORITY_API_KEY" in output(capsys)[1]
    assert await run("agents", "create", "--name", "x", "--url", "ftp://x", "--api-key", "k") == 2
    output(capsys)
    unreachable = ["--export", "http://127.0.0.1:9/e", "--checkpoints", "http://127.0.0.1:9/c"]
    assert await run("ledger", "verify", *unreachable) == 3
    assert "cannot reach http://127.0.0.1:9/" in output(capsys)[1]


async def test_a_url_is_printed_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from joserfc.jwk import OKPKey

    monkeypatch.setenv("AUTHORITY_URL", "http://ops:hunter2@127.0.0.1:9")
    monkeypatch.setenv("AUTHORITY_API_KEY", "ak_x")
    assert await run("agents", "list") == 3
    [line] = output(capsys)[1].splitlines()
    assert "hunter2" not in line
    assert "at http://127.0.0.1:9:" in line
    key = tmp_path / "agent.jwk"
    key.write_text(json.dumps(OKPKey.generate_key("Ed25519").as_dict(private=True)))
    call = ["--tool", "t", "--resource", "r", "--action", "a", "--audience", "https://x"]
    argv = ["token", "--agent", "agt_x", "--key", str(key), "--delegation", "a.b.c", *call]
    assert await run(*argv) == 3
    [line] = output(capsys)[1].splitlines()
    assert "hunter2" not in line
    assert "at http://127.0.0.1:9:" in line
    assert await run("agents", "list", "--url", "ftp://ops:hunter2@x") == 2
    assert "hunter2" not in output(capsys)[1]


@pytest.mark.parametrize(
    "argv",
    [
        ["admin", "list-keys"],
        ["admin", "revoke-key", "key_x"],
        ["keys", "list"],
        ["ledger", "export", "--out", "x.jsonl"],
    ],
)
def test_reading_commands_never_create_a_database(
    argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AUTHORITY_DATABASE_URL", "AUTHORITY_DATA_DIR", "AUTHORITY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "nothing"
    assert main(["--data-dir", str(data_dir), *argv]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "no database" in line
    assert str(data_dir) in line
    assert not data_dir.exists()
    assert list(tmp_path.iterdir()) == []


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Any]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.extend(_leaves(child, (*path, name)))
            return found
    return [(path, parser)]


def test_every_command_takes_json_but_the_servers() -> None:
    without = {("serve",), ("gateway",), ("demo",)}
    for path, parser in _leaves(build_parser()):
        options = {o for action in parser._actions for o in action.option_strings}
        assert ("--json" in options) is (path not in without), path


def test_an_unreachable_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHORITY_DATABASE_URL", "postgresql+asyncpg://postgres:pw@127.0.0.1:1/x")
    monkeypatch.delenv("AUTHORITY_REDIS_URL", raising=False)
    assert main(["admin", "list-keys"]) == 3
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: cannot reach the database")
    assert "pw" not in line
