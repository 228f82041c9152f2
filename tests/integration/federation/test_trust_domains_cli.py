"""``authority trust-domains`` and ``agents --identity-rule`` against a running authority."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.applications import Starlette

from authority.cli import main
from tests.revocation_support import serving
from tests.support import World


async def run(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def out(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip()


async def test_domains_and_rules_from_the_command_line(
    world: World,
    app: Starlette,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHORITY_API_KEY", world.admin)
    async with serving(app) as url:
        monkeypatch.setenv("AUTHORITY_URL", url)
        issuer = "https://token.actions.githubusercontent.com"
        create = (
            "trust-domains", "create", "--name", "github", "--preset", "github",
            "--issuer", issuer, "--audience", "https://authority.example",
            "--key-location", issuer + "/.well-known/openid-configuration",
        )  # fmt: skip
        assert await run(*create) == 0
        domain_id = out(capsys)
        assert domain_id.startswith("td_")
        assert await run("trust-domains", "disable", domain_id, "--json") == 0
        shown: dict[str, Any] = json.loads(out(capsys))
        assert shown["status"] == "disabled"
        assert await run("trust-domains", "update", domain_id, "--enable", "--json") == 0
        assert json.loads(out(capsys))["status"] == "active"
        assert await run("trust-domains", "list") == 0
        assert domain_id in out(capsys)

        monkeypatch.setenv("AUTHORITY_API_KEY", world.owner_key)
        # An owner may read domains, never change them (exit 1 with the API's refusal).
        assert await run("trust-domains", "disable", domain_id) != 0
        capsys.readouterr()
        rule = f"domain={domain_id},repository=acme/web,ref=refs/heads/main"
        assert await run("agents", "create", "--name", "ci", "--identity-rule", rule) == 0
        agent_id = out(capsys).splitlines()[-1]
        assert await run("agents", "show", agent_id, "--json") == 0
        agent = json.loads(out(capsys))
        assert agent["identity_rules"] == [
            {
                "domain_id": domain_id,
                "subject": None,
                "claims": {"repository": "acme/web", "ref": "refs/heads/main"},
            }
        ]
        other = f"domain={domain_id},repository=acme/api"
        assert await run("agents", "update", agent_id, "--identity-rule", other, "--json") == 0
        assert json.loads(out(capsys))["identity_rules"][0]["claims"] == {"repository": "acme/api"}
