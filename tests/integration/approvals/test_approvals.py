"""Approvals in the manner of OpenID CIBA (poll mode), from the agent's and the owner's side."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import select, update

from authority.clock import FrozenClock
from authority.storage.schema import approvals, grants
from tests.integration.grants.test_token_exchange import verify_with_discovery
from tests.revocation_support import is_active
from tests.support import RS_AUDIENCE, AgentKey, World

from .support import (
    RISKY_TOOL,
    approvals_page,
    ask,
    ask_pending,
    decide,
    error_of,
    grant_rows,
    ledger,
    only_approval,
    poll,
    with_risky_tool,
    world_with,
)


@pytest.fixture
async def risky(world: World) -> World:
    await with_risky_tool(world)
    return world


async def other_owner(world: World) -> tuple[str, str, AgentKey, str]:
    """(owner key, agent id, agent key, delegation credential) of a second owner."""
    owner = await world.post("/v1/owners", world.admin, {"name": "someone-else"})
    key = (await world.post(f"/v1/owners/{owner['id']}/api-keys", world.admin, {}))["api_key"]
    agent_key = AgentKey()
    agent = await world.post(
        "/v1/agents", key, {"name": "other", "autonomy_level": 2, "jwks": agent_key.jwks()}
    )
    return key, agent["id"], agent_key, ""


# --- the whole cycle ----------------------------------------------------------------------------
async def test_pending_then_approved_then_one_token(risky: World) -> None:
    world = risky
    response = await ask(world)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["expires_in"] == 300 and body["interval"] == 5
    auth_req_id = body["auth_req_id"]
    # At least 128 bits: 43 base64url characters of a 256-bit secret.
    assert auth_req_id.startswith("ar_") and len(auth_req_id) >= 43
    # Pending: a grant row, no token, the request kept under a hash of the auth_req_id.
    row = await only_approval(world)
    assert row.status == "pending" and auth_req_id not in row.id
    [grant] = await grant_rows(world)
    assert (grant.decision, grant.reason, grant.jti) == ("pending", "autonomy_too_low", None)
    [pending_entry] = await ledger(world, "grant")
    assert pending_entry["approval_id"] == row.id and pending_entry["decision"] == "pending"

    first = await poll(world, auth_req_id)
    assert (first.status_code, error_of(first)) == (400, "authorization_pending")
    assert first.headers["cache-control"] == "no-store"

    # The owner sees everything the agent asked for.
    [item] = (await approvals_page(world, world.owner_key))["items"]
    assert item["id"] == row.id
    assert (item["status"], item["tool"], item["resource"], item["action"]) == (
        "pending",
        RISKY_TOOL,
        "prod/web",
        "run",
    )
    assert item["intent"] == "triage bugs in acme/web"
    assert (item["agent_id"], item["delegation_id"]) == (world.agent_id, world.delegation_id)
    assert item["audience"] == RS_AUDIENCE and item["reason"] == "autonomy_too_low"
    assert item["expires_at"] == int(world.clock.now()) + 300
    single = await world.client.get(f"/v1/approvals/{row.id}", headers=world.auth(world.owner_key))
    assert single.json() == item

    approved = await decide(world, row.id, "approve", reason="ship it")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    [decided] = await ledger(world, "approval_decided")
    assert (decided["decision"], decided["reason"], decided["version"]) == (
        "approved",
        "ship it",
        2,
    )
    assert decided["actor"].startswith("key_") and decided["tool"] == RISKY_TOOL

    # Once approved, the next poll collects the token (no interval to wait for).
    issued = await poll(world, auth_req_id)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    claims = await verify_with_discovery(world.client, token)
    assert claims["sub"] == world.owner_id and claims["client_id"] == world.agent_id
    assert claims["authorization_details"][0]["tool"] == RISKY_TOOL
    assert claims["exp"] - claims["iat"] == 5
    assert await is_active(world, token)
    # The grant was committed before the token left, and names the approval.
    entries = await ledger(world, "grant")
    assert [e["decision"] for e in entries] == ["pending", "issued"]
    assert entries[-1]["approval_id"] == row.id and entries[-1]["jti"] == claims["jti"]
    assert (await only_approval(world)).status == "used"


async def test_an_approval_is_good_for_one_call(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    await decide(world, (await only_approval(world)).id, "approve")
    assert (await poll(world, auth_req_id)).status_code == 200
    again = await poll(world, auth_req_id)
    # CIBA §11: the auth_req_id is no longer valid (like a used authorization code).
    assert (again.status_code, error_of(again)) == (400, "invalid_grant")
    assert [g.decision for g in await grant_rows(world)].count("issued") == 1


async def test_concurrent_polls_of_an_approved_call_issue_one_token(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    await decide(world, (await only_approval(world)).id, "approve")
    responses = await asyncio.gather(*(poll(world, auth_req_id) for _ in range(6)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 400, 400, 400, 400, 400]
    assert {error_of(r) for r in responses if r.status_code == 400} == {"invalid_grant"}
    assert [g.decision for g in await grant_rows(world)].count("issued") == 1


async def test_polling_faster_than_the_interval_is_slow_down(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    assert error_of(await poll(world, auth_req_id)) == "authorization_pending"
    assert error_of(await poll(world, auth_req_id)) == "slow_down"
    # CIBA §11: the interval grew by 5 s; the old interval is too short now.
    assert (await only_approval(world)).poll_interval == 10
    world.clock.advance(5)
    assert error_of(await poll(world, auth_req_id)) == "slow_down"
    world.clock.advance(15)
    assert error_of(await poll(world, auth_req_id)) == "authorization_pending"


async def test_an_expired_request_is_expired_token(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    approval_id = (await only_approval(world)).id
    world.clock.advance(301)
    response = await poll(world, auth_req_id)
    assert (response.status_code, error_of(response)) == (400, "expired_token")
    late = await decide(world, approval_id, "approve")
    assert late.status_code == 409
    page = await approvals_page(world, world.owner_key, status="expired")
    assert [i["status"] for i in page["items"]] == ["expired"]
    assert (await approvals_page(world, world.owner_key))["items"] == []


async def test_approved_but_collected_too_late_is_expired(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    await decide(world, (await only_approval(world)).id, "approve")
    world.clock.advance(300)
    assert error_of(await poll(world, auth_req_id)) == "expired_token"
    assert [g.decision for g in await grant_rows(world)] == ["pending"]


async def test_a_denied_request_is_access_denied(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    approval_id = (await only_approval(world)).id
    denied = await decide(world, approval_id, "deny", reason="not on a Friday")
    assert denied.status_code == 200 and denied.json()["status"] == "denied"
    assert denied.json()["decision_reason"] == "not on a Friday"
    response = await poll(world, auth_req_id)
    assert (response.status_code, error_of(response)) == (400, "access_denied")
    [entry] = await ledger(world, "approval_decided")
    assert (entry["decision"], entry["reason"]) == ("denied", "not on a Friday")
    # Decided once: a second decision conflicts and changes nothing.
    assert (await decide(world, approval_id, "approve")).status_code == 409
    assert error_of(await poll(world, auth_req_id)) == "access_denied"


# --- who may see and decide --------------------------------------------------------------
async def test_another_owner_gets_404_and_cannot_decide(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    approval_id = (await only_approval(world)).id
    other_key, *_ = await other_owner(world)
    assert (
        await world.client.get(f"/v1/approvals/{approval_id}", headers=world.auth(other_key))
    ).status_code == 404
    assert (await decide(world, approval_id, "approve", other_key)).status_code == 404
    assert (await decide(world, approval_id, "deny", other_key)).status_code == 404
    assert (await approvals_page(world, other_key))["items"] == []
    # Nothing changed for the rightful owner and agent.
    assert (await only_approval(world)).status == "pending"
    assert error_of(await poll(world, auth_req_id)) == "authorization_pending"


async def test_roles_admin_sees_and_may_deny_auditor_only_reads(risky: World) -> None:
    world = risky
    await ask_pending(world)
    approval_id = (await only_approval(world)).id
    auditor = (await world.post("/v1/api-keys", world.admin, {"role": "auditor"}))["api_key"]
    for key in (world.admin, auditor):
        assert [i["id"] for i in (await approvals_page(world, key))["items"]] == [approval_id]
    # Approving grants a call: the owner's alone (as delegating is).
    assert (await decide(world, approval_id, "approve", world.admin)).status_code == 403
    for verb in ("approve", "deny"):
        assert (await decide(world, approval_id, verb, auditor)).status_code == 403
    assert (await only_approval(world)).status == "pending"
    assert (await decide(world, approval_id, "deny", world.admin)).status_code == 200


async def test_polling_by_another_agent_is_refused(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    await decide(world, (await only_approval(world)).id, "approve")
    # Another agent, properly authenticated with its own key: not its request.
    _, other_agent, other_key, _ = await other_owner(world)
    stolen = await poll(world, auth_req_id, key=other_key, agent_id=other_agent)
    assert (stolen.status_code, error_of(stolen)) == (400, "invalid_grant")
    # Naming the right agent without its key does not authenticate.
    forged = await poll(world, auth_req_id, key=AgentKey())
    assert (forged.status_code, error_of(forged)) == (400, "invalid_client")
    forged = await poll(world, auth_req_id, key=AgentKey(), via="actor_token")
    assert (forged.status_code, error_of(forged)) == (400, "invalid_request")
    # Nothing was consumed: the agent still gets its one token.
    assert (await poll(world, auth_req_id)).status_code == 200


async def test_the_attestation_is_single_use_when_polling(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    assert error_of(await poll(world, auth_req_id, attestation=attestation)) == (
        "authorization_pending"
    )
    world.clock.advance(5)
    replayed = await poll(world, auth_req_id, attestation=attestation)
    assert (replayed.status_code, error_of(replayed)) == (400, "invalid_client")


async def test_ids_that_are_not_the_agents_auth_req_id_are_invalid_grant(risky: World) -> None:
    world = risky
    await ask_pending(world)
    approval_id = (await only_approval(world)).id
    for guess in (approval_id, "ar_" + "A" * 43, "nonsense"):
        response = await poll(world, guess)
        assert (response.status_code, error_of(response)) == (400, "invalid_grant")
    missing = await world.client.post(
        "/oauth2/token", data={"grant_type": "urn:openid:params:grant-type:ciba"}
    )
    assert (missing.status_code, error_of(missing)) == (400, "invalid_request")


# --- every rule still holds at the moment of issue ------------------------------------------------
async def test_a_delegation_revoked_after_approval_refuses_the_token(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    await decide(world, (await only_approval(world)).id, "approve")
    revoked = await world.client.post(
        f"/v1/delegations/{world.delegation_id}/revoke",
        json={},
        headers=world.auth(world.owner_key),
    )
    assert revoked.status_code == 200
    response = await poll(world, auth_req_id)
    assert (response.status_code, error_of(response)) == (400, "access_denied")
    assert "access_token" not in response.json()
    assert (await ledger(world, "grant"))[-1]["reason"] == "delegation_revoked"
    row = await only_approval(world)
    assert (row.status, row.decided_by, row.decision_reason) == (
        "denied",
        "authority",
        "delegation_revoked",
    )
    assert error_of(await poll(world, auth_req_id)) == "access_denied"


async def test_an_agent_quarantined_after_approval_gets_no_token(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    await decide(world, (await only_approval(world)).id, "approve")
    quarantined = await world.client.post(
        f"/v1/agents/{world.agent_id}/quarantine",
        json={"reason": "odd"},
        headers=world.auth(world.owner_key),
    )
    assert quarantined.status_code == 200
    response = await poll(world, auth_req_id)
    assert error_of(response) == "access_denied"
    assert [g.decision for g in await grant_rows(world)].count("issued") == 0


async def test_a_race_with_quarantine_is_decided_under_the_row_lock(
    risky: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quarantine that commits after the poll's checks passed: the spend under the row
    locks refuses it (the exchange's path), and the approval is closed."""
    world = risky
    auth_req_id = await ask_pending(world)
    await decide(world, (await only_approval(world)).id, "approve")
    from authority.grants import ciba
    from authority.storage.schema import agents

    # The checks see the agent as it was before the quarantine committed.
    async def passes(*args: object) -> None:
        return None

    monkeypatch.setattr(ciba, "_recheck", passes)
    async with world.services.engine.begin() as conn:
        await conn.execute(
            update(agents).where(agents.c.id == world.agent_id).values(status="quarantined")
        )
    response = await poll(world, auth_req_id)
    assert error_of(response) == "access_denied"
    assert (await ledger(world, "grant"))[-1]["reason"] == "agent_inactive"
    assert (await only_approval(world)).status == "denied"


async def test_a_tool_retired_after_approval_is_refused_at_issue(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    await decide(world, (await only_approval(world)).id, "approve")
    tools = (await world.client.get("/v1/tools", headers=world.auth(world.admin))).json()
    [tool] = [t for t in tools["items"] if t["name"] == RISKY_TOOL]
    retired = await world.client.delete(f"/v1/tools/{tool['id']}", headers=world.auth(world.admin))
    assert retired.status_code == 200
    assert error_of(await poll(world, auth_req_id)) == "access_denied"
    assert (await ledger(world, "grant"))[-1]["reason"] == "tool_inactive"


async def test_a_dpop_bound_request_is_issued_bound_to_that_key(risky: World) -> None:
    world = risky
    holder = AgentKey()
    auth_req_id = await ask_pending(world, headers={"DPoP": holder.dpop_proof(world.clock.now())})
    await decide(world, (await only_approval(world)).id, "approve")
    bare = await poll(world, auth_req_id)
    assert (bare.status_code, error_of(bare)) == (400, "invalid_dpop_proof")
    other = await poll(
        world, auth_req_id, headers={"DPoP": AgentKey().dpop_proof(world.clock.now())}
    )
    assert error_of(other) == "invalid_dpop_proof"
    # Still open after malformed polls; the holder's proof gets the bound token.
    bound = await poll(world, auth_req_id, headers={"DPoP": holder.dpop_proof(world.clock.now())})
    assert bound.status_code == 200, bound.text
    assert bound.json()["token_type"] == "DPoP"
    claims = jwt.decode(bound.json()["access_token"], options={"verify_signature": False})
    assert "jkt" in claims["cnf"]


async def test_a_tool_that_requires_approval_always_asks(world: World) -> None:
    await world.add_tool("mail.send", actions=["send"], risk=0, approval_required=True)
    await world.delegate(scope=[{"tool": "mail.send", "resources": ["*"], "actions": ["send"]}])
    response = await world.exchange(tool="mail.send", resource="all", action="send")
    assert set(response.json()) == {"auth_req_id", "expires_in", "interval"}
    assert (await only_approval(world)).reason == "approval_required"


async def test_a_cedar_approval_forbid_asks_and_a_plain_forbid_denies(
    settings_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.cedar"
    policy.write_text(
        '@id("owner-approves-production")\n@approval("owner")\n'
        'forbid(principal, action, resource) when { context.resource like "prod/*" };\n'
        '@id("never-staging")\n'
        'forbid(principal, action, resource) when { context.resource like "staging/*" };\n'
    )
    async with world_with(settings_factory(policy_file=policy), clock) as world:
        await world.delegate(
            scope=[
                {
                    "tool": "github.issues.create",
                    "resources": ["prod/*", "staging/*", "acme/*"],
                    "actions": ["create"],
                }
            ]
        )
        asked = await world.exchange(resource="prod/web")
        assert set(asked.json()) == {"auth_req_id", "expires_in", "interval"}
        assert (await only_approval(world)).reason == "approval_required"
        refused = await world.exchange(resource="staging/web")
        assert (refused.status_code, error_of(refused)) == (400, "invalid_scope")
        assert (await world.exchange(resource="acme/web")).status_code == 200


async def test_an_agent_cannot_flood_its_owner_with_requests(
    settings_factory: Any, clock: FrozenClock
) -> None:
    async with world_with(settings_factory(approval_max_pending=2), clock) as world:
        await with_risky_tool(world)
        await ask_pending(world)
        await ask_pending(world)
        response = await ask(world)
        assert (response.status_code, error_of(response)) == (429, "too_many_requests")
        assert (await ledger(world, "grant"))[-1]["reason"] == "approval_limit"
        # Only the owner's decisions empty the queue: no time to come back at.
        assert "retry-after" not in response.headers


async def test_lists_page_and_filter(risky: World) -> None:
    world = risky
    for _ in range(3):
        await ask_pending(world)
    first = await approvals_page(world, world.owner_key, limit="2")
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = await approvals_page(world, world.owner_key, limit="2", cursor=first["next_cursor"])
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    await decide(world, first["items"][0]["id"], "deny")
    assert len((await approvals_page(world, world.owner_key, status="denied"))["items"]) == 1
    assert len((await approvals_page(world, world.owner_key, status="all"))["items"]) == 3
    mine = await approvals_page(world, world.owner_key, agent_id=world.agent_id, status="all")
    assert len(mine["items"]) == 3
    bad = await world.client.get(
        "/v1/approvals", params={"status": "bogus"}, headers=world.auth(world.owner_key)
    )
    assert bad.status_code == 400


async def test_nothing_pending_is_stored_as_the_auth_req_id(risky: World) -> None:
    world = risky
    auth_req_id = await ask_pending(world)
    async with world.services.engine.connect() as conn:
        approval_rows = [tuple(r) for r in (await conn.execute(select(approvals))).all()]
        grant_rows_ = [tuple(r) for r in (await conn.execute(select(grants))).all()]
    dump = json.dumps([approval_rows, grant_rows_], default=str)
    assert auth_req_id not in dump


async def test_a_tool_that_now_requires_dpop_refuses_an_unbound_approved_call(
    risky: World,
) -> None:
    """A poll carrying a DPoP proof must not pass for a call approved as a bearer token."""
    world = risky
    auth_req_id = await ask_pending(world)
    row = await only_approval(world)
    assert (await decide(world, row.id, "approve")).status_code == 200
    tools = await world.client.get("/v1/tools", headers=world.auth(world.admin))
    [tool] = [t for t in tools.json()["items"] if t["name"] == RISKY_TOOL]
    changed = await world.client.patch(
        f"/v1/tools/{tool['id']}", json={"dpop_required": True}, headers=world.auth(world.admin)
    )
    assert changed.status_code == 200, changed.text
    proof = AgentKey().dpop_proof(world.clock.now())
    response = await poll(world, auth_req_id, headers={"DPoP": proof})
    assert (response.status_code, error_of(response)) == (400, "access_denied")
