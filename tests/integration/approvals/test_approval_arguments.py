"""The owner approves the exact arguments of a call, and the token is for exactly those."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from authority.clock import FrozenClock
from authority.policy.active import ActivePolicy
from authority.policy.cedar import CedarPolicy
from authority.sdk.arguments import digest
from authority.sdk.webhooks import verify_webhook
from tests.revocation_support import serving
from tests.support import World

from .support import (
    RISKY_TOOL,
    approvals_page,
    ask_pending,
    decide,
    ledger,
    only_approval,
    poll,
    with_risky_tool,
    world_with,
)
from .test_cli import run
from .test_webhooks import Receiver, register

# What an agent may send, markup and control characters included: shown as JSON data.
ARGS = {
    "service": "web",
    "version": "2.4.1",
    "note": '<script>alert("x")</script>\x1b[31m\u2028',
    "replicas": 3,
    "canary": True,
    "regions": ["eu-1", "us-2"],
}


@pytest.fixture
async def risky(world: World) -> World:
    await with_risky_tool(world)
    return world


def risky_call(**members: Any) -> str:
    detail = {"type": "tool_call", "tool": RISKY_TOOL, "resource": "prod/web", "action": "run"}
    return json.dumps([{**detail, **members}])


async def test_the_owner_sees_the_arguments_and_the_token_carries_their_digest(
    risky: World,
) -> None:
    world = risky
    auth_req_id = await ask_pending(world, authorization_details=risky_call(arguments=ARGS))
    [item] = (await approvals_page(world, world.owner_key))["items"]
    assert item["arguments"] == ARGS
    assert item["arguments_digest"] == digest(ARGS)
    shown = await world.client.get(
        f"/v1/approvals/{item['id']}", headers=world.auth(world.owner_key)
    )
    assert shown.headers["content-type"] == "application/json"
    assert shown.json()["arguments"] == ARGS
    # JSON escapes the control characters; the markup is a string in it, never markup.
    assert "\x1b" not in shown.text and "\\u001b" in shown.text
    # The pending grant's ledger entry binds the approval to the digest, not the arguments.
    [pending] = await ledger(world, "grant")
    assert pending["approval_id"] == item["id"]
    assert pending["arguments_digest"] == digest(ARGS) and "2.4.1" not in json.dumps(pending)

    assert (await decide(world, item["id"], "approve")).status_code == 200
    issued = await poll(world, auth_req_id)
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["authorization_details"][0]["arguments_digest"] == digest(ARGS)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["authorization_details"][0]["arguments_digest"] == digest(ARGS)
    assert "arguments" not in claims["authorization_details"][0]
    entries = await ledger(world, "grant")
    assert [e["decision"] for e in entries] == ["pending", "issued"]
    assert entries[-1]["arguments_digest"] == digest(ARGS)
    # The approved call is what the row keeps; used, it shows what was approved.
    row = await only_approval(world)
    assert row.status == "used" and json.loads(row.request)["arguments"] == ARGS


async def test_a_poll_cannot_change_the_arguments(risky: World) -> None:
    """CIBA polls carry no call: the token is for the arguments approved, whatever is sent."""
    world = risky
    auth_req_id = await ask_pending(world, authorization_details=risky_call(arguments=ARGS))
    [item] = (await approvals_page(world, world.owner_key))["items"]
    await decide(world, item["id"], "approve")
    other = {**ARGS, "version": "6.6.6"}
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    response = await world.client.post(
        "/oauth2/token",
        data={
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": auth_req_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": attestation,
            "authorization_details": risky_call(arguments=other),
        },
    )
    assert response.status_code == 200, response.text
    [detail] = response.json()["authorization_details"]
    assert detail["arguments_digest"] == digest(ARGS) != digest(other)


async def test_a_digest_alone_is_shown_as_such(risky: World) -> None:
    world = risky
    bound = digest(ARGS)
    auth_req_id = await ask_pending(world, authorization_details=risky_call(arguments_digest=bound))
    [item] = (await approvals_page(world, world.owner_key))["items"]
    assert (item["arguments"], item["arguments_digest"]) == (None, bound)
    await decide(world, item["id"], "approve")
    issued = await poll(world, auth_req_id)
    assert issued.json()["authorization_details"][0]["arguments_digest"] == bound


async def test_a_call_without_arguments_shows_none(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    [item] = (await approvals_page(world, world.owner_key))["items"]
    assert (item["arguments"], item["arguments_digest"]) == (None, None)
    await decide(world, item["id"], "approve")
    issued = await poll(world, auth_req_id)
    assert "arguments_digest" not in issued.json()["authorization_details"][0]


async def test_cedar_sees_the_approved_arguments_again_at_issue(
    settings_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    """The poll decides again, as of now, on the arguments the owner approved."""
    policy = tmp_path / "policy.cedar"
    policy.write_text("")
    async with world_with(settings_factory(policy_file=policy), clock) as world:
        await with_risky_tool(world)
        auth_req_id = await ask_pending(world, authorization_details=risky_call(arguments=ARGS))
        [item] = (await approvals_page(world, world.owner_key))["items"]
        await decide(world, item["id"], "approve")
        # A rule written while the owner looked: it reads an argument of the approved call.
        world.services.policy = ActivePolicy.fixed(
            CedarPolicy(
                "forbid(principal, action, resource) when { context.arguments.replicas > 2 };"
            )
        )
        refused = await poll(world, auth_req_id)
        assert (refused.status_code, refused.json()["error"]) == (400, "access_denied")


async def test_the_webhook_shows_the_arguments(settings_factory: Any, clock: FrozenClock) -> None:
    receiver = Receiver()
    settings = settings_factory(webhook_allow_http=True, webhook_allow_private_addresses=True)
    async with serving(receiver.app()) as base, world_with(settings, clock) as world:
        await with_risky_tool(world)
        secret = (await register(world, base + "/hook")).json()["secret"]
        await ask_pending(world, authorization_details=risky_call(arguments=ARGS))
        await receiver.wait_for(1)
        headers, body = receiver.received[0]
        event = verify_webhook(secret, headers, body, now=clock.now())
        assert event.data["arguments"] == ARGS
        assert event.data["arguments_digest"] == digest(ARGS)
        assert b"\x1b" not in body


async def test_the_cli_lists_the_arguments_as_ascii_json(
    risky: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = risky
    await ask_pending(world, authorization_details=risky_call(arguments=ARGS))
    key_file = tmp_path / "owner.key"
    key_file.write_text(world.owner_key + "\n")
    async with serving(world.client._transport.app) as url:  # type: ignore[attr-defined]
        assert await run("approvals", "list", "--url", url, "--api-key-file", str(key_file)) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    shown = line.split("\t")[-1]
    assert json.loads(shown) == ARGS
    assert shown.isascii() and "\x1b" not in line
