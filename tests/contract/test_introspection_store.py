"""The introspection port's contract (``authority.storage.introspection``), on every backend."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from authority.storage.introspection import IntrospectionFacts

from .support import NOW, Store, seed

CONSUMERS = 50


async def test_lookup_by_digest_returns_the_joined_facts(store: Store) -> None:
    s = await seed(store)
    facts = await store.introspection.lookup(s.server_id, s.digest)
    assert isinstance(facts, IntrospectionFacts)
    assert dataclasses.asdict(facts) | {"single_use": bool(facts.single_use)} == {
        "rs_id": s.server_id,
        "rs_audience": s.audience,
        "rs_auth_method": "client_secret_basic",
        "rs_secret_hash": "ab" * 32,
        "rs_jwks": None,
        "rs_status": "active",
        "grant_id": s.grant_id,
        "decision": "issued",
        "token_hash": s.digest,
        "grant_audience": s.audience,
        "grant_expires_at": NOW + 300,
        "revoked_at": None,
        "single_use": False,
        "consumed_at": None,
        "delegation_id": s.delegation_id,
        "agent_id": s.agent_id,
        "owner_id": s.owner_id,
        "delegation_status": "active",
        "delegation_expires_at": NOW + 3600,
        "agent_status": "active",
        "owner_status": "active",
        "tool_status": "active",
        "tool_server_id": s.server_id,
        "delegation_scope": "[]",
        "rs_tools": s.tool,
    }


async def test_rs_tools_are_the_callers_active_tools_only(store: Store) -> None:
    s = await seed(store)
    stamps = {"created_at": NOW - 100, "updated_at": NOW - 100}
    common = {
        "actions": '["read"]',
        "read_actions": '["read"]',
        "risk_tier": 0,
        "approval_required": False,
        "single_use": False,
        "dpop_required": False,
        **stamps,
    }
    await store.insert(
        "resource_servers",
        {
            "id": "rs_other",
            "name": "other",
            "audience": "https://other.example",
            "auth_method": "client_secret_basic",
            "secret_hash": "cd" * 32,
            "status": "active",
            **stamps,
        },
    )
    await store.insert(
        "tools",
        {
            "id": "tool_2",
            "name": "files.write",
            "resource_server_id": s.server_id,
            "status": "active",
            **common,
        },
    )
    await store.insert(
        "tools",
        {
            "id": "tool_3",
            "name": "files.old",
            "resource_server_id": s.server_id,
            "status": "retired",
            **common,
        },
    )
    await store.insert(
        "tools",
        {
            "id": "tool_4",
            "name": "mail.send",
            "resource_server_id": "rs_other",
            "status": "active",
            **common,
        },
    )
    facts = await store.introspection.lookup(s.server_id, s.digest)
    assert facts.rs_tools is not None
    assert sorted(facts.rs_tools.split(",")) == sorted([s.tool, "files.write"])
    other = await store.introspection.lookup("rs_other", s.digest)
    assert other.rs_tools == "mail.send"


def _grant_part(facts: IntrospectionFacts) -> dict[str, object]:
    values = dataclasses.asdict(facts)
    return {name: value for name, value in values.items() if not name.startswith("rs_")}


def _server_part(facts: IntrospectionFacts) -> dict[str, object]:
    values = dataclasses.asdict(facts)
    return {name: value for name, value in values.items() if name.startswith("rs_")}


async def test_an_unknown_digest_has_no_grant_but_the_caller_is_still_read(store: Store) -> None:
    s = await seed(store)
    for digest in ("0" * 64, ""):  # "" is what the flow sends for a token not ours
        facts = await store.introspection.lookup(s.server_id, digest)
        assert facts.rs_id == s.server_id
        assert set(_grant_part(facts).values()) == {None}


async def test_an_unknown_caller_has_no_registration_but_the_grant_is_read(store: Store) -> None:
    s = await seed(store)
    facts = await store.introspection.lookup("rs_nobody", s.digest)
    assert set(_server_part(facts).values()) == {None}
    assert facts.grant_id == s.grant_id
    assert facts.tool_server_id == s.server_id


async def test_nothing_known_is_one_row_of_nothing(store: Store) -> None:
    facts = await store.introspection.lookup("rs_nobody", "0" * 64)
    assert set(dataclasses.asdict(facts).values()) == {None}


async def test_the_facts_follow_what_is_stored_now(store: Store) -> None:
    s = await seed(store, revoked_at=NOW - 1, consumed_at=NOW - 2, single_use=True)
    facts = await store.introspection.lookup(s.server_id, s.digest)
    assert facts.revoked_at == NOW - 1
    assert facts.consumed_at == NOW - 2
    assert bool(facts.single_use) is True


@pytest.mark.commits
async def test_a_token_is_consumed_exactly_once_among_concurrent_consumers(store: Store) -> None:
    s = await seed(store, single_use=True)
    won = await asyncio.gather(
        *(store.introspection.consume(s.jti, NOW + i) for i in range(CONSUMERS))
    )
    assert won.count(True) == 1
    assert won.count(False) == CONSUMERS - 1
    winner = won.index(True)
    assert (await store.grant(s.grant_id))["consumed_at"] == NOW + winner
    facts = await store.introspection.lookup(s.server_id, s.digest)
    assert facts.consumed_at == NOW + winner
    # And never again, afterwards.
    assert await store.introspection.consume(s.jti, NOW + CONSUMERS) is False


async def test_a_revoked_or_unknown_token_is_not_consumed(store: Store) -> None:
    s = await seed(store, single_use=True, revoked_at=NOW - 1)
    assert await store.introspection.consume(s.jti, NOW) is False
    assert (await store.grant(s.grant_id))["consumed_at"] is None
    assert await store.introspection.consume("jti-unknown", NOW) is False


async def test_a_token_revoked_through_the_revocation_port_is_not_consumed(store: Store) -> None:
    s = await seed(store, single_use=True)
    revoked = await store.revocation.revoke(
        s.jti, now=NOW, actor=s.agent_id, reason="revoked_by_agent", event_expires_at=NOW + 400
    )
    assert revoked is not None
    assert await store.introspection.consume(s.jti, NOW) is False
    assert (await store.introspection.lookup(s.server_id, s.digest)).revoked_at == NOW
