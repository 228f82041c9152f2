"""The exchange port's contract (``authority.storage.exchange``), on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from authority.settings import Settings
from authority.storage.exchange import (
    ApprovalFacts,
    Denial,
    ExchangeFacts,
    NotRequested,
    NotSpent,
    Spend,
    SpendOutcome,
    SpendState,
    StoredAgent,
    StoredDelegation,
    StoredTool,
)

from .exchange_support import (
    RACERS,
    Ports,
    closed,
    grant,
    new_approval,
    open_ports,
    refuse_as,
    refuse_request,
    spend_of,
    use,
)
from .support import NOW, Seeded, seed


@pytest.fixture
async def ports(sql_settings: Settings | None) -> AsyncIterator[Ports]:
    async for opened in open_ports(sql_settings):
        yield opened


async def seeded(ports: Ports, **delegation: object) -> Seeded:
    s = await seed(ports.store)
    if delegation:
        await ports.update("delegations", s.delegation_id, **delegation)
    return s


async def issued_grants(ports: Ports) -> list[dict[str, object]]:
    """The issued grants the test wrote (the seed's own grant ``grt_1`` aside)."""
    rows = await ports.rows("grants")
    return [r for r in rows if r["decision"] == "issued" and r["id"] != "grt_1"]


# --- load ---------------------------------------------------------------------------------
async def test_load_reads_the_agent_delegation_and_tool(ports: Ports) -> None:
    s = await seeded(ports)
    facts = await ports.exchange.load(s.agent_id, s.delegation_id, s.tool)
    assert facts == ExchangeFacts(
        agent=StoredAgent(
            id=s.agent_id,
            owner_id=s.owner_id,
            status="active",
            autonomy_level=1,
            jwks='{"keys": []}',
            owner_status="active",
        ),
        delegation=StoredDelegation(
            id=s.delegation_id,
            owner_id=s.owner_id,
            agent_id=s.agent_id,
            status="active",
            expires_at=NOW + 3600,
            scope="[]",
            intent="tidy files",
            max_calls=None,
            rate_per_minute=None,
            calls_used=0,
            cnf_jkt="k" * 43,
        ),
        tool=StoredTool(
            name=s.tool,
            status="active",
            resource_server_id=s.server_id,
            actions='["read"]',
            read_actions='["read"]',
            risk_tier=0,
            approval_required=False,
            single_use=False,
            dpop_required=False,
            max_token_lifetime=None,
            audience=s.audience,
            server_status="active",
        ),
    )


async def test_load_of_missing_rows_reads_as_nothing(ports: Ports) -> None:
    s = await seeded(ports)
    assert await ports.exchange.load("", "", "") == ExchangeFacts(None, None, None)
    facts = await ports.exchange.load(s.agent_id, "dlg_unknown", "no.such.tool")
    assert facts.agent is not None and facts.agent.id == s.agent_id
    assert (facts.delegation, facts.tool) == (None, None)
    facts = await ports.exchange.load("agt_unknown", s.delegation_id, s.tool)
    assert facts.agent is None
    assert facts.delegation is not None and facts.tool is not None


# --- spend --------------------------------------------------------------------------------
async def test_a_spend_claims_the_uses_spends_the_call_and_writes_the_grant(ports: Ports) -> None:
    s = await seeded(ports)
    issued = grant(s, "issued")
    outcome = await ports.exchange.spend(
        spend_of(s), issued, [use("a"), use("p")], refuse_as(s, "unused")
    )
    assert outcome == SpendOutcome(claimed=(True, True))
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 1
    row = await ports.row("grants", issued.grant.id)
    assert (row["decision"], row["jti"], row["revoked_at"]) == ("issued", issued.grant.jti, None)
    [entry] = await ports.entries()
    assert (entry["kind"], entry["grant_id"], entry["decision"]) == ("grant", row["id"], "issued")
    keys = {r["key"] for r in await ports.rows("used_jtis")}
    assert keys == {use("a").key, use("p").key}


async def test_a_replayed_use_spends_nothing_and_writes_the_denial(ports: Ports) -> None:
    s = await seeded(ports)
    assert await ports.exchange.spend_uses([use("a")]) == (True,)
    seen: list[NotSpent] = []
    outcome = await ports.exchange.spend(
        spend_of(s), grant(s, "issued"), [use("a"), use("p")], refuse_as(s, "x", seen)
    )
    assert outcome.claimed == (False, True) and outcome.denial is not None
    assert seen == [NotSpent((False, True), None)]  # the rows are not read for a replay
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 0
    assert await issued_grants(ports) == []
    assert (await ports.row("grants", outcome.denial.grant.grant.id))["decision"] == "denied"
    # The new use is recorded with the denial.
    assert {r["key"] for r in await ports.rows("used_jtis")} == {use("a").key, use("p").key}


async def test_a_capped_call_is_spent_once_among_concurrent_spends(ports: Ports) -> None:
    s = await seeded(ports, max_calls=1)
    seen: list[NotSpent] = []
    outcomes = await asyncio.gather(
        *(
            ports.exchange.spend(
                spend_of(s), grant(s, "issued"), [use(f"u{i}")], refuse_as(s, "cap", seen)
            )
            for i in range(RACERS)
        )
    )
    assert [o.denial for o in outcomes].count(None) == 1
    assert len(await issued_grants(ports)) == 1
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 1
    # Each loser saw the cap reached, and wrote its denial with its use.
    assert len(seen) == RACERS - 1
    assert all(n.state is not None and n.state.calls_used == 1 for n in seen)
    denied = [r for r in await ports.rows("grants") if r["decision"] == "denied"]
    assert len(denied) == RACERS - 1
    assert len(await ports.rows("used_jtis")) == RACERS
    assert len(await ports.entries()) == RACERS


async def test_a_single_use_is_spent_once_among_concurrent_spends(ports: Ports) -> None:
    s = await seeded(ports)
    outcomes = await asyncio.gather(
        *(
            ports.exchange.spend(spend_of(s), grant(s, "issued"), [use("same")], refuse_as(s, "r"))
            for _ in range(RACERS)
        )
    )
    winners = [o for o in outcomes if o.denial is None]
    assert [o.claimed for o in winners] == [(True,)]
    assert all(o.claimed == (False,) for o in outcomes if o.denial is not None)
    assert len(await issued_grants(ports)) == 1
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 1


async def test_a_registration_changed_in_flight_refuses_and_spends_nothing(ports: Ports) -> None:
    s = await seeded(ports)
    spend = spend_of(s)  # what the decision read: risk tier 0
    await ports.update("tools", "tool_1", risk_tier=3)  # committed before the spend
    before = await ports.entries()
    seen: list[NotSpent] = []
    outcome = await ports.exchange.spend(
        spend, grant(s, "issued"), [], refuse_as(s, "registration_changed", seen)
    )
    assert outcome.denial is not None and outcome.claimed == ()
    [not_spent] = seen
    assert not_spent.state is not None and not not_spent.state.as_decided
    assert not_spent.state.tool_status == "active"
    # Nothing spent or issued; only the denial the flow returned is written.
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 0
    assert await issued_grants(ports) == []
    entries = await ports.entries()
    assert len(entries) == len(before) + 1
    assert (entries[-1]["decision"], entries[-1]["reason"]) == ("denied", "registration_changed")


@pytest.mark.parametrize(
    ("change", "table", "row_id", "expected"),
    [
        ({"status": "quarantined"}, "agents", "agt_1", {"agent_status": "quarantined"}),
        ({"status": "revoked"}, "delegations", "dlg_1", {"status": "revoked"}),
        ({"status": "retired"}, "tools", "tool_1", {"tool_status": "retired"}),
        ({"status": "retired"}, "resource_servers", "rs_1", {"server_status": "retired"}),
        ({"expires_at": NOW}, "delegations", "dlg_1", {"expires_at": NOW}),
    ],
)
async def test_a_refused_spend_shows_the_rows_as_they_are(
    ports: Ports, change: dict[str, object], table: str, row_id: str, expected: dict[str, object]
) -> None:
    s = await seeded(ports)
    await ports.update(table, row_id, **change)
    seen: list[NotSpent] = []
    outcome = await ports.exchange.spend(
        spend_of(s), grant(s, "issued"), [], refuse_as(s, "x", seen)
    )
    assert outcome.denial is not None
    [not_spent] = seen
    assert not_spent.state is not None
    shown = {name: getattr(not_spent.state, name) for name in expected}
    assert shown == expected
    assert await issued_grants(ports) == []


async def test_a_spend_for_a_gone_or_foreign_delegation_shows_no_rows(ports: Ports) -> None:
    s = await seeded(ports)
    seen: list[NotSpent] = []
    registered = spend_of(s).registered
    foreign = Spend(s.delegation_id, "agt_other", NOW, registered)
    gone = Spend("dlg_gone", s.agent_id, NOW, registered)
    for spend in (foreign, gone):
        outcome = await ports.exchange.spend(spend, grant(s, "issued"), [], refuse_as(s, "x", seen))
        assert outcome.denial is not None
    assert seen == [NotSpent((), None), NotSpent((), None)]


async def test_a_full_state_is_read_when_nothing_refuses_but_the_cap(ports: Ports) -> None:
    s = await seeded(ports, max_calls=0)
    seen: list[NotSpent] = []
    await ports.exchange.spend(spend_of(s), grant(s, "issued"), [], refuse_as(s, "cap", seen))
    assert seen == [
        NotSpent(
            (),
            SpendState(
                status="active",
                expires_at=NOW + 3600,
                max_calls=0,
                calls_used=0,
                agent_status="active",
                owner_status="active",
                tool_status="active",
                server_status="active",
                as_decided=True,
            ),
        )
    ]


# --- deny ---------------------------------------------------------------------------------
async def test_a_denial_is_recorded_with_its_entry_and_its_use(ports: Ports) -> None:
    s = await seeded(ports)
    denial = grant(s, "denied", reason="scope_exceeded")
    claimed = await ports.exchange.deny(denial, use("a"), lambda: grant(s, "denied", reason="r"))
    assert claimed is True
    row = await ports.row("grants", denial.grant.id)
    assert (row["decision"], row["reason"], row["jti"]) == ("denied", "scope_exceeded", None)
    [entry] = await ports.entries()
    assert (entry["grant_id"], entry["reason"]) == (denial.grant.id, "scope_exceeded")
    assert [r["key"] for r in await ports.rows("used_jtis")] == [use("a").key]


async def test_a_denial_with_a_spent_use_writes_the_replay_instead(ports: Ports) -> None:
    s = await seeded(ports)
    await ports.exchange.spend_uses([use("a")])
    first = grant(s, "denied", reason="scope_exceeded")
    instead = grant(s, "denied", reason="attestation_replayed")
    assert await ports.exchange.deny(first, use("a"), lambda: instead) is False
    grant_ids = {r["id"] for r in await ports.rows("grants")}
    assert instead.grant.id in grant_ids and first.grant.id not in grant_ids
    [entry] = await ports.entries()
    assert entry["reason"] == "attestation_replayed"


async def test_a_denial_without_a_use(ports: Ports) -> None:
    s = await seeded(ports)
    denial = grant(s, "denied", reason="agent_unknown")
    assert await ports.exchange.deny(denial, None, lambda: grant(s, "denied", reason="x")) is None
    assert (await ports.row("grants", denial.grant.id))["reason"] == "agent_unknown"
    assert len(await ports.entries()) == 1
    assert await ports.rows("used_jtis") == []


async def test_one_of_concurrent_denials_claims_their_shared_use(ports: Ports) -> None:
    s = await seeded(ports)
    results = await asyncio.gather(
        *(
            ports.exchange.deny(
                grant(s, "denied", reason="scope_exceeded"),
                use("same"),
                lambda: grant(s, "denied", reason="attestation_replayed"),
            )
            for _ in range(RACERS)
        )
    )
    assert results.count(True) == 1 and results.count(False) == RACERS - 1
    reasons = [e["reason"] for e in await ports.entries()]
    assert reasons.count("scope_exceeded") == 1
    assert reasons.count("attestation_replayed") == RACERS - 1


async def test_spend_uses_claims_each_use_once(ports: Ports) -> None:
    assert await ports.exchange.spend_uses([]) == ()
    assert await ports.exchange.spend_uses([use("a"), use("b")]) == (True, True)
    assert await ports.exchange.spend_uses([use("b"), use("c")]) == (False, True)


# --- approvals ----------------------------------------------------------------------------
async def request(ports: Ports, s: Seeded, approval_id: str = "apr_1", **kwargs: object) -> None:
    seen: list[NotRequested] = []
    outcome = await ports.exchange.request_approval(
        new_approval(s, approval_id),
        grant(s, "pending", reason="approval_required", approval_id=approval_id),
        [use(approval_id)],
        refuse_request(s, seen),
        max_pending=5,
    )
    assert outcome.denial is None and outcome.claimed == (True,) and seen == []


async def test_an_approval_request_writes_the_request_and_its_pending_grant(ports: Ports) -> None:
    s = await seeded(ports)
    await request(ports, s)
    facts = await ports.exchange.approval("apr_1")
    assert facts == ApprovalFacts(
        id="apr_1",
        status="pending",
        created_at=NOW,
        expires_at=NOW + 300,
        owner_id=s.owner_id,
        agent_id=s.agent_id,
        delegation_id=s.delegation_id,
        request=new_approval(s).request,
        reason="approval_required",
    )
    row = await ports.row("approvals", "apr_1")
    assert (row["poll_interval"], row["last_polled_at"], row["decided_at"]) == (5, None, None)
    pending = [r for r in await ports.rows("grants") if r["decision"] == "pending"]
    assert [r["reason"] for r in pending] == ["approval_required"]
    [entry] = await ports.entries()
    assert (entry["decision"], entry["approval_id"]) == ("pending", "apr_1")
    assert await ports.exchange.approval("apr_unknown") is None


async def test_an_approval_request_over_the_limit_or_replayed_is_denied(ports: Ports) -> None:
    s = await seeded(ports)
    await request(ports, s, "apr_1")
    seen: list[NotRequested] = []
    for approval_id, uses in (("apr_2", [use("fresh")]), ("apr_3", [use("apr_1")])):
        outcome = await ports.exchange.request_approval(
            new_approval(s, approval_id),
            grant(s, "pending", reason="approval_required", approval_id=approval_id),
            uses,
            refuse_request(s, seen),
            max_pending=1,
        )
        assert outcome.denial is not None
    # Over the limit with a new use, then a replay (the limit is not read for it).
    assert seen == [NotRequested((True,), True), NotRequested((False,), False)]
    assert await ports.exchange.approval("apr_2") is None
    assert await ports.exchange.approval("apr_3") is None
    reasons = [e.get("reason") for e in await ports.entries()]
    assert reasons == ["approval_required", "approval_limit", "approval_limit"]
    # An expired request no longer counts.
    outcome = await ports.exchange.request_approval(
        new_approval(s, "apr_4", now=NOW + 301),
        grant(s, "pending", reason="approval_required", approval_id="apr_4"),
        [use("later")],
        refuse_request(s, seen),
        max_pending=1,
    )
    assert outcome.denial is None


async def test_one_of_concurrent_polls_within_the_interval_is_noted(ports: Ports) -> None:
    s = await seeded(ports)
    await request(ports, s)
    noted = await asyncio.gather(
        *(ports.exchange.note_poll("apr_1", NOW + 1, slow_down_step=5) for _ in range(RACERS))
    )
    assert noted.count(True) == 1
    row = await ports.row("approvals", "apr_1")
    assert row["last_polled_at"] == NOW + 1
    assert row["poll_interval"] == 5 + 5 * (RACERS - 1)  # each slow_down adds the step
    assert await ports.exchange.note_poll("apr_1", NOW + 1 + row["poll_interval"], slow_down_step=5)
    assert not await ports.exchange.note_poll("apr_unknown", NOW, slow_down_step=5)


async def test_an_approved_request_is_redeemed_once_among_concurrent_polls(ports: Ports) -> None:
    s = await seeded(ports)
    await request(ports, s)
    await ports.update("approvals", "apr_1", status="approved")
    outcomes = await asyncio.gather(
        *(
            ports.exchange.spend(
                spend_of(s),
                grant(s, "issued", approval_id="apr_1"),
                [],
                refuse_as(s, "x"),
                approval_id="apr_1",
            )
            for _ in range(RACERS)
        )
    )
    assert [o.approval_taken for o in outcomes].count(False) == 1
    assert all(o.denial is None for o in outcomes)
    assert (await ports.row("approvals", "apr_1"))["status"] == "used"
    assert len(await issued_grants(ports)) == 1
    # The others rolled back: one call spent, one issued entry.
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 1
    decisions = [e["decision"] for e in await ports.entries()]
    assert decisions == ["pending", "issued"]


async def test_an_expired_or_pending_approval_is_not_redeemed(ports: Ports) -> None:
    s = await seeded(ports)
    await request(ports, s)
    for now in (NOW, NOW + 300):  # still pending; then approved but expired
        outcome = await ports.exchange.spend(
            spend_of(s, now),
            grant(s, "issued", approval_id="apr_1", now=now),
            [],
            refuse_as(s, "x"),
            approval_id="apr_1",
        )
        assert outcome.approval_taken
        await ports.update("approvals", "apr_1", status="approved")
    assert await issued_grants(ports) == []
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 0


async def test_a_spend_refused_at_issue_closes_the_approval(ports: Ports) -> None:
    s = await seeded(ports)
    await request(ports, s)
    await ports.update("approvals", "apr_1", status="approved")
    await ports.update("agents", s.agent_id, status="quarantined")

    def refuse(not_spent: NotSpent) -> Denial:
        reason = "agent_inactive"
        return Denial(grant(s, "denied", reason=reason), closed(s, "apr_1", reason, NOW + 2))

    outcome = await ports.exchange.spend(
        spend_of(s, NOW + 2),
        grant(s, "issued", approval_id="apr_1"),
        [],
        refuse,
        approval_id="apr_1",
    )
    assert outcome.denial is not None and not outcome.approval_taken
    row = await ports.row("approvals", "apr_1")
    assert (row["status"], row["decided_by"], row["decision_reason"], row["decided_at"]) == (
        "denied",
        "authority",
        "agent_inactive",
        NOW + 2,
    )
    kinds = [(e["kind"], e.get("reason")) for e in await ports.entries()]
    assert kinds[1:] == [("grant", "agent_inactive"), ("approval_decided", "agent_inactive")]


async def test_closing_an_approval_writes_the_denial_and_closes_it_once(ports: Ports) -> None:
    s = await seeded(ports)
    await request(ports, s)
    await ports.update("approvals", "apr_1", status="approved")
    for _ in range(2):
        await ports.exchange.close_approval(
            Denial(
                grant(s, "denied", reason="delegation_revoked"),
                closed(s, "apr_1", "delegation_revoked"),
            )
        )
    assert (await ports.row("approvals", "apr_1"))["status"] == "denied"
    kinds = [e["kind"] for e in await ports.entries()]
    # Two denied grants; the approval's decision once (it was no longer approved after).
    assert kinds == ["grant", "grant", "approval_decided", "grant"]
