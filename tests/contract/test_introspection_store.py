"""The introspection port's contract (``authority.storage.introspection``), on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Coroutine, Mapping
from typing import Any, TypeVar, cast

import pytest

from authority.storage.compiled import Row
from authority.storage.driver import Driver
from authority.storage.introspection import IntrospectionFacts, IntrospectionStore
from authority.storage.sql.introspection import SqlIntrospectionStore

from .support import NOW, Store, seed

CONSUMERS = 50
T = TypeVar("T")


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


# --- coalesced lookups (storage.sql.introspection: one query per event-loop turn) ----------
class CountingDriver:
    """The store's driver, counting its queries; ``fail`` makes every query raise."""

    def __init__(self, inner: Driver) -> None:
        self._inner = inner
        self.dialect = inner.dialect
        self.queries = 0
        self.fail = False

    async def fetchrow(self, statement: Any, params: Mapping[str, Any]) -> Row | None:
        return await self._run(self._inner.fetchrow(statement, params))

    async def fetch(self, statement: Any, params: Mapping[str, Any]) -> list[Row]:
        return await self._run(self._inner.fetch(statement, params))

    async def _run(self, query: Awaitable[T]) -> T:
        self.queries += 1
        if self.fail:
            await asyncio.sleep(0)  # the round trip, lost
            if isinstance(query, Coroutine):
                query.close()
            raise ConnectionError("the database closed the connection")
        return await query


def counted(store: Store) -> tuple[IntrospectionStore, CountingDriver]:
    if store.services is None:
        pytest.skip("the memory port has no queries to coalesce")
    driver = CountingDriver(store.services.sql)
    return SqlIntrospectionStore(cast(Driver, driver)), driver


async def test_concurrent_lookups_each_get_their_own_facts(store: Store) -> None:
    s = await seed(store)
    questions = [(s.server_id, s.digest), (s.server_id, "0" * 64), ("rs_unknown", s.digest)] * 5
    alone = [await store.introspection.lookup(c, d) for c, d in questions]
    together = await asyncio.gather(*(store.introspection.lookup(c, d) for c, d in questions))
    assert list(together) == alone
    assert alone[0].grant_id == s.grant_id
    assert alone[1].grant_id is None and alone[1].rs_id == s.server_id
    assert alone[2].rs_id is None and alone[2].grant_id == s.grant_id


async def test_concurrent_lookups_in_one_turn_are_one_query_on_postgresql(store: Store) -> None:
    s = await seed(store)
    introspection, driver = counted(store)
    facts = await asyncio.gather(*(introspection.lookup(s.server_id, s.digest) for _ in range(40)))
    assert {f.grant_id for f in facts} == {s.grant_id}
    # SQLite answers inline, so its lookups never overlap: one statement each.
    assert driver.queries == (1 if driver.dialect == "postgresql" else 40)
    # A lone lookup is the single query.
    assert (await introspection.lookup(s.server_id, s.digest)).grant_id == s.grant_id
    assert driver.queries == (2 if driver.dialect == "postgresql" else 41)


async def test_a_failed_query_fails_every_lookup_it_answers(store: Store) -> None:
    s = await seed(store)
    introspection, driver = counted(store)
    driver.fail = True
    answers = await asyncio.gather(
        *(introspection.lookup(s.server_id, s.digest) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(a, ConnectionError) for a in answers), answers
    driver.fail = False
    assert (await introspection.lookup(s.server_id, s.digest)).grant_id == s.grant_id


async def test_a_cancelled_lookup_leaves_the_others_answered(store: Store) -> None:
    s = await seed(store)
    introspection, driver = counted(store)
    tasks = [asyncio.create_task(introspection.lookup(s.server_id, s.digest)) for _ in range(5)]
    await asyncio.sleep(0)  # every lookup asked (on SQLite: already answered, inline)
    tasks[2].cancel()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    if driver.dialect == "postgresql":
        assert isinstance(answers[2], asyncio.CancelledError)
    assert [a.grant_id for i, a in enumerate(answers) if i != 2] == [s.grant_id] * 4  # type: ignore[union-attr]
    # Nothing left behind: the next turn's lookups are answered as usual.
    again = await asyncio.gather(*(introspection.lookup(s.server_id, s.digest) for _ in range(3)))
    assert {a.grant_id for a in again} == {s.grant_id}
