"""The owner's console: approvals, step-up, the kill switch, agents and delegations.

Over real HTTP through the app, with a software passkey: what a browser does, without
one (the browser tests do the same through Chromium).
"""

from __future__ import annotations

import html
import re

import orjson
from sqlalchemy import select

from authority.storage.schema import ledger_entries
from tests.integration.approvals.support import ask_pending, poll, with_risky_tool

from .conftest import Console


async def _pending(console: Console) -> tuple[str, str]:
    """A call waiting for the owner: (the agent's auth_req_id, the approval's id)."""
    world = console.world
    await with_risky_tool(world)
    auth_req_id = await ask_pending(world)
    listed = await world.client.get("/v1/approvals", headers=world.auth(world.owner_key))
    [approval] = listed.json()["items"]
    return auth_req_id, approval["id"]


async def _entries(console: Console, kind: str) -> list[dict[str, object]]:
    async with console.world.services.engine.connect() as conn:
        rows = (
            await conn.execute(select(ledger_entries.c.body).where(ledger_entries.c.kind == kind))
        ).all()
    return [orjson.loads(row.body) for row in rows]


async def test_the_owner_approves_with_a_passkey_and_the_agent_gets_its_token(
    console: Console,
) -> None:
    auth_req_id, approval_id = await _pending(console)
    owner = await console.owner()
    listing = await owner.open("/console/owner/approvals")
    assert approval_id in listing.text
    assert "deploy.run" in listing.text
    assessment = await owner.confirm("approve", approval_id)
    response = await owner.submit(
        f"/console/owner/approvals/{approval_id}/approve", passkey=assessment
    )
    assert response.status_code == 303, response.text
    token = await poll(console.world, auth_req_id)
    assert token.status_code == 200, token.text
    assert "access_token" in token.json()
    [decided] = await _entries(console, "approval_decided")
    assert decided["actor"] == f"console:{owner.id}+passkey"
    assert decided["decision"] == "approved"


async def test_a_session_without_step_up_cannot_approve(console: Console) -> None:
    auth_req_id, approval_id = await _pending(console)
    owner = await console.owner()
    await owner.open("/console/owner/approvals")
    response = await owner.submit(f"/console/owner/approvals/{approval_id}/approve")
    assert response.status_code == 403
    response = await owner.submit(f"/console/owner/approvals/{approval_id}/approve", passkey="{}")
    assert response.status_code == 403
    assert (await poll(console.world, auth_req_id)).json()["error"] == "authorization_pending"
    assert await _entries(console, "approval_decided") == []


async def test_a_confirmation_is_for_one_action_once(console: Console) -> None:
    _, approval_id = await _pending(console)
    owner = await console.owner()
    await owner.open("/console/owner/approvals")
    # Confirmed for another action: refused, and the challenge is spent.
    other = await owner.confirm("approve", "apr_" + "0" * 32)
    response = await owner.submit(f"/console/owner/approvals/{approval_id}/approve", passkey=other)
    assert response.status_code == 403
    confirmation = await owner.confirm("approve", approval_id)
    response = await owner.submit(
        f"/console/owner/approvals/{approval_id}/approve", passkey=confirmation
    )
    assert response.status_code == 303
    # The same assertion again: its challenge is gone.
    response = await owner.submit(
        f"/console/owner/approvals/{approval_id}/approve", passkey=confirmation
    )
    assert response.status_code == 403


async def test_a_confirmation_from_another_session_is_refused(console: Console) -> None:
    _, approval_id = await _pending(console)
    owner = await console.owner()
    await owner.open("/console/owner/approvals")
    elsewhere = console.browser()
    elsewhere.passkey = owner.passkey
    assert (await elsewhere.sign_in()).status_code == 200
    await elsewhere.open("/console/owner/approvals")
    confirmation = await elsewhere.confirm("approve", approval_id)
    response = await owner.submit(
        f"/console/owner/approvals/{approval_id}/approve", passkey=confirmation
    )
    assert response.status_code == 403


async def test_a_stale_confirmation_is_refused(console: Console) -> None:
    _, approval_id = await _pending(console)
    owner = await console.owner()
    await owner.open("/console/owner/approvals")
    confirmation = await owner.confirm("approve", approval_id)
    console.world.clock.advance(console.world.services.settings.console_step_up_window)
    response = await owner.submit(
        f"/console/owner/approvals/{approval_id}/approve", passkey=confirmation
    )
    assert response.status_code == 403


async def test_denying_needs_only_the_session(console: Console) -> None:
    auth_req_id, approval_id = await _pending(console)
    owner = await console.owner()
    await owner.open("/console/owner/approvals")
    response = await owner.submit(f"/console/owner/approvals/{approval_id}/deny", reason="no")
    assert response.status_code == 303
    assert (await poll(console.world, auth_req_id)).json()["error"] == "access_denied"
    [decided] = await _entries(console, "approval_decided")
    assert decided["actor"] == f"console:{owner.id}"


async def test_the_kill_switch_refuses_the_agents_next_exchange(console: Console) -> None:
    owner = await console.owner()
    world = console.world
    assert (await world.exchange()).status_code == 200
    page = await owner.open("/console/owner/kill")
    assert "Stop all my agents" in page.text
    response = await owner.submit("/console/owner/kill", reason="leaked key")
    assert response.status_code == 403  # no passkey: nothing stopped
    assert (await world.exchange()).status_code == 200
    confirmation = await owner.confirm("kill", world.owner_id)
    response = await owner.submit("/console/owner/kill", reason="leaked key", passkey=confirmation)
    assert response.status_code == 200, response.text
    assert "Time to contain" in response.text
    assert re.search(r'class="time-to-contain">\d+ ms<', response.text)
    refused = await world.exchange()
    assert refused.status_code in (400, 401, 403), refused.text
    [kill] = await _entries(console, "kill_switch")
    assert kill["actor"] == f"console:{owner.id}+passkey"


async def test_quarantine_then_release_with_a_passkey(console: Console) -> None:
    owner = await console.owner()
    world = console.world
    await owner.open("/console/owner/agents")
    response = await owner.submit(
        f"/console/owner/agents/{world.agent_id}/quarantine", reason="odd calls"
    )
    assert response.status_code == 303
    assert (await world.exchange()).status_code != 200
    page = await owner.open("/console/owner/agents")
    assert "quarantined" in page.text
    response = await owner.submit(f"/console/owner/agents/{world.agent_id}/release")
    assert response.status_code == 403
    confirmation = await owner.confirm("release", world.agent_id)
    response = await owner.submit(
        f"/console/owner/agents/{world.agent_id}/release", passkey=confirmation
    )
    assert response.status_code == 303
    assert (await world.exchange()).status_code == 200
    [released] = await _entries(console, "agent_released")
    assert released["actor"] == f"console:{owner.id}+passkey"


async def test_a_delegation_is_granted_after_its_consent_page_and_revoked_with_a_passkey(
    console: Console,
) -> None:
    owner = await console.owner()
    world = console.world
    page = await owner.open("/console/owner/delegations/new")
    assert "github.issues.create" in page.text
    form = {
        "agent_id": world.agent_id,
        "intent": "label issues in acme/api",
        "tool": "github.issues.create",
        "resources": "acme/api",
        "actions": "create",
        "expires_in": "86400",
        "max_calls": "10",
        "rate_per_minute": "",
    }
    review = await owner.submit("/console/owner/delegations/review", **form)
    assert review.status_code == 200, review.text
    for shown in ("label issues in acme/api", "acme/api", "create", "10", "triager"):
        assert shown in review.text
    created = await owner.submit("/console/owner/delegations", **form)
    assert created.status_code == 201, created.text
    assert "shown this once" in created.text
    [made] = [
        e for e in await _entries(console, "delegation_created") if e["intent"] == form["intent"]
    ]
    delegation_id = str(made["delegation_id"])
    listing = await owner.open("/console/owner/delegations")
    assert delegation_id in listing.text
    assert "eyJ" not in listing.text  # the credential is never shown again
    response = await owner.submit(f"/console/owner/delegations/{delegation_id}/revoke")
    assert response.status_code == 403
    confirmation = await owner.confirm("revoke", delegation_id)
    response = await owner.submit(
        f"/console/owner/delegations/{delegation_id}/revoke", passkey=confirmation
    )
    assert response.status_code == 303
    revoked = [e for e in await _entries(console, "delegation_revoked")]
    assert [e["actor"] for e in revoked] == [f"console:{owner.id}+passkey"]


async def test_an_agent_name_with_markup_renders_as_text(console: Console) -> None:
    world = console.world
    payload = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    response = await world.client.patch(
        f"/v1/agents/{world.agent_id}", json={"name": payload}, headers=world.auth(world.owner_key)
    )
    assert response.status_code == 200, response.text
    owner = await console.owner()
    for path in ("/console/owner/agents", "/console/owner/delegations"):
        page = await owner.open(path)
        assert payload not in page.text
        assert "<script>alert" not in page.text
        assert html.escape(payload, quote=True) in page.text or "&lt;img" in page.text


async def test_another_owners_approval_does_not_exist_for_an_owner(console: Console) -> None:
    _, approval_id = await _pending(console)
    made = await console.world.post("/v1/owners", console.world.admin, {"name": "other-owner"})
    other = await console.person("owner", owner_id=made["id"])
    listing = await other.open("/console/owner/approvals")
    assert approval_id not in listing.text
    confirmation = await other.confirm("approve", approval_id)
    response = await other.submit(
        f"/console/owner/approvals/{approval_id}/approve", passkey=confirmation
    )
    assert response.status_code == 404


async def test_the_live_events_endpoint_lists_containment_after_a_leaf(console: Console) -> None:
    owner = await console.owner()
    world = console.world
    await owner.open("/console/owner/agents")
    await owner.submit(f"/console/owner/agents/{world.agent_id}/quarantine", reason="odd")
    assert world.services.sequencer is not None
    await world.services.sequencer.run_once()
    response = await owner.client.get("/console/owner/events.json?after=-1")
    assert response.status_code == 200
    kinds = [item["kind"] for item in response.json()["items"]]
    assert "agent_quarantined" in kinds
    last = response.json()["next"]
    response = await owner.client.get(f"/console/owner/events.json?after={last}")
    assert response.json()["items"] == []
    bad = await owner.client.get("/console/owner/events.json?after=x")
    assert bad.status_code == 400


async def test_an_agents_card_shows_its_autonomy_history(console: Console) -> None:
    world = console.world
    reason = "<b>trusted</b> after review"
    response = await world.client.post(
        f"/v1/agents/{world.agent_id}/autonomy",
        json={"level": 3, "reason": reason},
        headers=world.auth(world.owner_key),
    )
    assert response.status_code == 200, response.text
    assert world.services.sequencer is not None
    await world.services.sequencer.run_once()
    owner = await console.owner()
    page = await owner.open("/console/owner/agents")
    changes = re.findall(r'<span class="autonomy-change">(.*?)</span>', page.text)
    assert changes, page.text
    assert "&rarr; 3" in changes[-1] or "→ 3" in changes[-1]
    assert html.escape(reason) in changes[-1] and "<b>" not in changes[-1]
