"""The revocation port's contract (``authority.storage.revocation``), on every backend."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from authority.storage.revocation import RevocationFacts, TokenRevoked

from .support import NOW, Store, seed

REVOKERS = 50


async def test_lookup_as_a_server_reads_its_registration_and_the_grant(store: Store) -> None:
    s = await seed(store)
    facts = await store.revocation.lookup(s.server_id, s.jti)
    assert isinstance(facts, RevocationFacts)
    assert dataclasses.asdict(facts) == {
        "rs_id": s.server_id,
        "rs_audience": s.audience,
        "rs_auth_method": "client_secret_basic",
        "rs_secret_hash": "ab" * 32,
        "rs_jwks": None,
        "rs_status": "active",
        "agent_client_id": None,
        "agent_client_jwks": None,
        "agent_client_status": None,
        "grant_id": s.grant_id,
        "decision": "issued",
        "grant_audience": s.audience,
        "agent_id": s.agent_id,
        "owner_id": s.owner_id,
        "delegation_id": s.delegation_id,
        "tool": s.tool,
        "revoked_at": None,
    }


async def test_lookup_as_an_agent_reads_the_agent(store: Store) -> None:
    s = await seed(store)
    facts = await store.revocation.lookup(s.agent_id, s.jti)
    assert facts.rs_id is None
    assert (facts.agent_client_id, facts.agent_client_jwks, facts.agent_client_status) == (
        s.agent_id,
        '{"keys": []}',
        "active",
    )
    assert facts.grant_id == s.grant_id


async def test_unknown_callers_and_tokens_read_as_nothing(store: Store) -> None:
    s = await seed(store)
    facts = await store.revocation.lookup("nobody", "")  # "" for a token not ours
    assert set(dataclasses.asdict(facts).values()) == {None}
    facts = await store.revocation.lookup(s.server_id, "jti-unknown")
    assert facts.rs_id == s.server_id
    assert (facts.grant_id, facts.decision, facts.revoked_at) == (None, None, None)


async def test_revoking_marks_the_grant_and_records_the_entry_and_the_event(store: Store) -> None:
    s = await seed(store)
    revoked = await store.revocation.revoke(
        s.jti,
        now=NOW,
        actor=s.server_id,
        reason="revoked_by_resource_server",
        event_expires_at=NOW + 400,
    )
    assert revoked is not None
    assert dataclasses.replace(revoked, event_id=0) == TokenRevoked(
        event_id=0,
        grant_id=s.grant_id,
        agent_id=s.agent_id,
        owner_id=s.owner_id,
        delegation_id=s.delegation_id,
        tool=s.tool,
    )
    assert revoked.event_id >= 1
    assert (await store.grant(s.grant_id))["revoked_at"] == NOW
    assert (await store.revocation.lookup(s.server_id, s.jti)).revoked_at == NOW
    assert await store.ledger() == [
        {
            "kind": "token_revoked",
            "version": 1,
            "time": NOW,
            "jti": s.jti,
            "grant_id": s.grant_id,
            "agent_id": s.agent_id,
            "owner_id": s.owner_id,
            "delegation_id": s.delegation_id,
            "tool": s.tool,
            "actor": s.server_id,
            "reason": "revoked_by_resource_server",
        }
    ]
    assert await store.events() == [
        {
            "created_at": NOW,
            "kind": "token",
            "jti": s.jti,
            "delegation_id": s.delegation_id,
            "agent_id": s.agent_id,
            "owner_id": s.owner_id,
            "expires_at": NOW + 400,
            "tool": None,
        }
    ]


@pytest.mark.commits
async def test_a_token_is_revoked_once_among_concurrent_revokers(store: Store) -> None:
    s = await seed(store)
    results = await asyncio.gather(
        *(
            store.revocation.revoke(
                s.jti,
                now=NOW + i,
                actor=s.agent_id,
                reason="revoked_by_agent",
                event_expires_at=NOW + 400,
            )
            for i in range(REVOKERS)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert len(await store.ledger()) == 1
    events = await store.events()
    assert len(events) == 1
    assert (await store.grant(s.grant_id))["revoked_at"] == events[0]["created_at"]


async def test_an_already_revoked_token_writes_nothing(store: Store) -> None:
    s = await seed(store, revoked_at=NOW - 5)
    revoked = await store.revocation.revoke(
        s.jti, now=NOW, actor=s.agent_id, reason="revoked_by_agent", event_expires_at=NOW + 400
    )
    assert revoked is None
    assert (await store.grant(s.grant_id))["revoked_at"] == NOW - 5
    assert await store.ledger() == []
    assert await store.events() == []


async def test_an_unknown_token_writes_nothing(store: Store) -> None:
    s = await seed(store)
    revoked = await store.revocation.revoke(
        "jti-unknown", now=NOW, actor=s.agent_id, reason="revoked_by_agent", event_expires_at=NOW
    )
    assert revoked is None
    assert (await store.grant(s.grant_id))["revoked_at"] is None
    assert await store.ledger() == []
    assert await store.events() == []
