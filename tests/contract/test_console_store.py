"""The console's port (``authority.storage.console``), on every backend.

Single use is the port's rule: of many concurrent takers of one challenge, or users of
one enrolment link, exactly one wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from authority.ledger.entries import Entry
from authority.settings import Settings
from authority.storage.console import (
    Challenge,
    ConsoleStore,
    Credential,
    Enrolment,
    Person,
    Session,
)
from authority.storage.memory.console import MemoryConsoleStore

from .support import NOW, Store

RACERS = 20


@dataclass
class Console:
    port: ConsoleStore
    rows: Store


@pytest.fixture
async def console(store: Store, sql_settings: Settings | None) -> AsyncIterator[Console]:
    if store.services is None:
        assert store.tables is not None
        yield Console(MemoryConsoleStore(store.tables), store)
    else:
        yield Console(store.services.console_store, store)


def _entry(object_id: str, change: str = "created") -> Entry:
    return (
        "registry_changed",
        2,
        NOW,
        {"object_type": "person", "object_id": object_id, "change": change, "actor": "t"},
    )


def _person(pid: str = "per_1", *, role: str = "admin", owner: str | None = None) -> Person:
    return Person(pid, f"name-{pid}", role, owner, "invited", NOW, NOW)  # type: ignore[arg-type]


def _link(lid: str = "l" * 64, pid: str = "per_1", *, expires: int = NOW + 60) -> Enrolment:
    return Enrolment(lid, pid, "t", NOW, expires, None)


def _credential(cid: str = "pky_1", pid: str = "per_1", raw: str = "cred-1") -> Credential:
    return Credential(cid, raw, pid, b"cose", 0, NOW, None)


async def test_a_person_and_their_link_are_written_with_their_entry(console: Console) -> None:
    assert await console.port.create_person(_person(), _link(), [_entry("per_1")])
    assert await console.port.person("per_1") == _person()
    found = await console.port.enrolment("l" * 64, NOW)
    assert found == (_link(), _person())
    assert [e["object_id"] for e in await console.rows.ledger()] == ["per_1"]
    # The name is unique: nothing is written for a second person of that name.
    other = Person("per_2", "name-per_1", "auditor", None, "invited", NOW, NOW)
    assert not await console.port.create_person(other, _link("m" * 64, "per_2"), [_entry("per_2")])
    assert await console.port.person("per_2") is None
    assert len(await console.rows.ledger()) == 1


async def test_an_owners_person_reads_the_owners_status(console: Console) -> None:
    await console.rows.insert(
        "owners",
        {"id": "own_1", "name": "o", "status": "suspended", "created_at": NOW, "updated_at": NOW},
    )
    await console.port.create_person(_person(role="owner", owner="own_1"), _link(), [])
    person = await console.port.person("per_1")
    assert person is not None
    assert (person.owner_id, person.owner_status) == ("own_1", "suspended")


async def test_using_a_link_stores_the_passkey_and_activates_the_person(console: Console) -> None:
    await console.port.create_person(_person(), _link(), [])
    person = await console.port.use_enrolment(
        "l" * 64, _credential(), now=NOW, entry=_entry("pky_1")
    )
    assert person is not None
    assert person.status == "active"
    assert await console.port.credential("cred-1") == _credential()
    assert await console.port.credentials_of("per_1") == [_credential()]
    assert await console.port.enrolment("l" * 64, NOW) is None  # used
    second = _credential("pky_2", raw="cred-2")
    assert await console.port.use_enrolment("l" * 64, second, now=NOW, entry=_entry("x")) is None


async def test_an_expired_link_is_not_usable(console: Console) -> None:
    await console.port.create_person(_person(), _link(expires=NOW), [])
    assert await console.port.enrolment("l" * 64, NOW) is None
    assert (
        await console.port.use_enrolment("l" * 64, _credential(), now=NOW, entry=_entry("x"))
        is None
    )
    assert await console.port.credential("cred-1") is None


async def test_one_of_many_concurrent_uses_of_a_link_wins(console: Console) -> None:
    await console.port.create_person(_person(), _link(), [])
    results = await asyncio.gather(
        *(
            console.port.use_enrolment(
                "l" * 64, _credential(f"pky_{i}", raw=f"cred-{i}"), now=NOW, entry=_entry(f"k{i}")
            )
            for i in range(RACERS)
        )
    )
    assert sum(r is not None for r in results) == 1
    assert len(await console.port.credentials_of("per_1")) == 1


async def test_a_signature_counter_moves_only_from_the_value_seen(console: Console) -> None:
    await console.port.create_person(_person(), _link(), [])
    await console.port.use_enrolment("l" * 64, _credential(), now=NOW, entry=_entry("x"))
    assert await console.port.use_credential("cred-1", seen_count=0, new_count=5, now=NOW + 1)
    assert not await console.port.use_credential("cred-1", seen_count=0, new_count=6, now=NOW + 2)
    stored = await console.port.credential("cred-1")
    assert stored is not None
    assert (stored.sign_count, stored.last_used_at) == (5, NOW + 1)


async def test_a_challenge_is_taken_once_and_never_after_it_expires(console: Console) -> None:
    challenge = Challenge("c" * 64, "step_up", "b" * 64, "per_1", "approve:apr_1", NOW, NOW + 60)
    await console.port.put_challenge(challenge)
    assert await console.port.take_challenge("c" * 64, NOW + 59) == challenge
    assert await console.port.take_challenge("c" * 64, NOW + 59) is None
    await console.port.put_challenge(challenge)
    assert await console.port.take_challenge("c" * 64, NOW + 60) is None  # expired
    assert await console.port.take_challenge("c" * 64, NOW) is None  # and gone


async def test_one_of_many_concurrent_takers_of_a_challenge_wins(console: Console) -> None:
    challenge = Challenge("c" * 64, "sign_in", "b" * 64, None, None, NOW, NOW + 60)
    await console.port.put_challenge(challenge)
    results = await asyncio.gather(
        *(console.port.take_challenge("c" * 64, NOW) for _ in range(RACERS))
    )
    assert [r for r in results if r is not None] == [challenge]


async def test_sessions_are_found_touched_and_ended(console: Console) -> None:
    await console.port.create_person(_person(), _link(), [])
    session = Session("s" * 64, "per_1", NOW, NOW, NOW + 100)
    await console.port.create_session(session)
    found = await console.port.session("s" * 64)
    assert found is not None
    assert found[0] == session
    await console.port.touch_session("s" * 64, NOW + 10)
    found = await console.port.session("s" * 64)
    assert found is not None
    assert found[0].last_seen_at == NOW + 10
    await console.port.end_session("s" * 64)
    assert await console.port.session("s" * 64) is None


async def test_retiring_a_person_ends_their_sessions_and_links(console: Console) -> None:
    await console.port.create_person(_person(), _link(), [])
    await console.port.create_session(Session("s" * 64, "per_1", NOW, NOW, NOW + 100))
    retired = await console.port.retire_person(
        "per_1", now=NOW + 1, entry=_entry("per_1", "retired")
    )
    assert retired is not None
    assert retired.status == "retired"
    assert await console.port.session("s" * 64) is None
    assert await console.port.enrolment("l" * 64, NOW + 1) is None
    assert not await console.port.add_enrolment(_link("m" * 64), _entry("per_1", "updated"))
    assert await console.port.retire_person("per_1", now=NOW + 2, entry=_entry("per_1")) is None
    assert [e["change"] for e in await console.rows.ledger()] == ["retired"]


async def test_people_are_listed_oldest_first(console: Console) -> None:
    await console.port.create_person(_person("per_b"), _link("b" * 64, "per_b"), [])
    await console.port.create_person(_person("per_a"), _link("a" * 64, "per_a"), [])
    assert [p.id for p in await console.port.people(limit=10)] == ["per_a", "per_b"]
    assert len(await console.port.people(limit=1)) == 1
