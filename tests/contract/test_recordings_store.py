"""The recording port's contract (``authority.storage.recordings``), on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from authority.ledger.entries import Entry, MalformedEntry
from authority.storage.memory.recordings import MemoryRecordingStore
from authority.storage.recordings import NewRecording, RecordingStore, SubmissionFacts

from .support import NOW, Seeded, Store, seed

SUBMITTERS = 30


@pytest.fixture
def recordings(store: Store) -> RecordingStore:
    if store.tables is not None:
        return MemoryRecordingStore(store.tables)
    assert store.services is not None
    return store.services.recording_store


def recording(s: Seeded, call_id: str = "cal_1", **changes: Any) -> NewRecording:
    values: dict[str, Any] = {
        "id": call_id,
        "created_at": NOW,
        "server_id": s.server_id,
        "submission_id": "sub-1",
        "grant_id": s.grant_id,
        "jti": s.jti,
        "request_head": b"\x01sealed-request",
        "response_head": b"\x01sealed-response",
        **changes,
    }
    return NewRecording(**values)


def entry(s: Seeded, call_id: str = "cal_1", **changes: Any) -> Entry:
    body: dict[str, Any] = {
        "call_id": call_id,
        "gateway": s.server_id,
        "upstream": "files",
        "transport": "http",
        "method": "GET",
        "target": "/files/a",
        "outcome": "forwarded",
        "status": 200,
        "started_at_ms": NOW * 1000,
        "duration_us": 10,
        "jti": s.jti,
        "grant_id": s.grant_id,
        "agent_id": s.agent_id,
        "owner_id": s.owner_id,
        "delegation_id": s.delegation_id,
        "tool": s.tool,
        **changes,
    }
    return ("gateway_call", 1, NOW, body)


async def test_lookup_reads_the_server_and_the_grant(
    store: Store, recordings: RecordingStore
) -> None:
    s = await seed(store, resource="files/a", action="read")
    facts = await recordings.lookup(s.server_id, s.jti)
    assert dataclasses.asdict(facts) == {
        "rs_id": s.server_id,
        "rs_audience": s.audience,
        "rs_auth_method": "client_secret_basic",
        "rs_secret_hash": "ab" * 32,
        "rs_jwks": None,
        "rs_status": "active",
        "grant_id": s.grant_id,
        "decision": "issued",
        "grant_audience": s.audience,
        "agent_id": s.agent_id,
        "owner_id": s.owner_id,
        "delegation_id": s.delegation_id,
        "tool": s.tool,
        "resource": "files/a",
        "action": "read",
    }


async def test_unknown_servers_and_tokens_read_as_nothing(
    store: Store, recordings: RecordingStore
) -> None:
    s = await seed(store)
    facts = await recordings.lookup("nobody", "")
    assert isinstance(facts, SubmissionFacts)
    assert set(dataclasses.asdict(facts).values()) == {None}
    facts = await recordings.lookup(s.server_id, "jti-unknown")
    assert facts.rs_id == s.server_id
    assert facts.grant_id is None


async def test_a_record_writes_its_entry_and_its_sealed_heads(
    store: Store, recordings: RecordingStore
) -> None:
    s = await seed(store)
    stored = await recordings.record(recording(s), entry(s))
    assert (stored.call_id, stored.created) == ("cal_1", True)
    ledger = await store.ledger()
    assert len(ledger) == 1
    assert ledger[0]["kind"] == "gateway_call" and ledger[0]["call_id"] == "cal_1"
    found = await recordings.get("cal_1")
    assert found is not None
    assert (found.id, found.created_at, found.server_id) == ("cal_1", NOW, s.server_id)
    assert (found.grant_id, found.jti, found.swept_at) == (s.grant_id, s.jti, None)
    assert found.request_head == b"\x01sealed-request"
    assert found.response_head == b"\x01sealed-response"
    assert found.entry_body.startswith('{"agent_id":"agt_1"')
    assert '"call_id":"cal_1"' in found.entry_body
    assert await recordings.get("cal_unknown") is None
    assert await recordings.get("not an id!") is None


async def test_a_record_without_a_token_or_heads(store: Store, recordings: RecordingStore) -> None:
    s = await seed(store)
    bare = recording(s, grant_id=None, jti=None, request_head=None, response_head=None)
    body: dict[str, Any] = {"outcome": "refused", "status": 401, "jti": None, "grant_id": None}
    body |= {"agent_id": None, "owner_id": None, "delegation_id": None}
    stored = await recordings.record(bare, entry(s, **body))
    assert stored.created
    found = await recordings.get("cal_1")
    assert found is not None
    assert (found.grant_id, found.jti, found.request_head, found.response_head) == (None,) * 4


async def test_a_resubmission_writes_nothing(store: Store, recordings: RecordingStore) -> None:
    s = await seed(store)
    await recordings.record(recording(s), entry(s))
    again = await recordings.record(recording(s, "cal_2"), entry(s, "cal_2"))
    assert (again.call_id, again.created) == ("cal_1", False)
    assert len(await store.ledger()) == 1
    assert await recordings.get("cal_2") is None


async def test_concurrent_resubmissions_store_one_call(
    store: Store, recordings: RecordingStore
) -> None:
    s = await seed(store)
    results = await asyncio.gather(
        *(
            recordings.record(recording(s, f"cal_{i}"), entry(s, f"cal_{i}"))
            for i in range(SUBMITTERS)
        )
    )
    winners = [r for r in results if r.created]
    assert len(winners) == 1
    assert {r.call_id for r in results} == {winners[0].call_id}
    ledger = await store.ledger()
    assert [e["call_id"] for e in ledger] == [winners[0].call_id]


async def test_submission_ids_are_per_server(store: Store, recordings: RecordingStore) -> None:
    s = await seed(store)
    await store.insert(
        "resource_servers",
        {
            "id": "rs_2",
            "name": "other",
            "audience": "https://other.example",
            "auth_method": "client_secret_basic",
            "status": "active",
            "created_at": NOW,
            "updated_at": NOW,
        },
    )
    first = await recordings.record(recording(s), entry(s))
    assert first.created
    body: dict[str, Any] = {"gateway": "rs_2", "outcome": "refused", "jti": None, "grant_id": None}
    body |= {"agent_id": None, "owner_id": None, "delegation_id": None}
    second = await recordings.record(
        recording(s, "cal_2", server_id="rs_2", grant_id=None, jti=None), entry(s, "cal_2", **body)
    )
    assert (second.call_id, second.created) == ("cal_2", True)


async def test_a_malformed_entry_writes_nothing(store: Store, recordings: RecordingStore) -> None:
    s = await seed(store)
    with pytest.raises(MalformedEntry):
        await recordings.record(recording(s), entry(s, outcome="maybe"))
    assert await store.ledger() == []
    assert await recordings.get("cal_1") is None


async def test_recordings_of_a_grant_in_pages(store: Store, recordings: RecordingStore) -> None:
    s = await seed(store)
    for i in range(5):
        await recordings.record(
            recording(s, f"cal_{i}", submission_id=f"sub-{i}", created_at=NOW + i % 2),
            entry(s, f"cal_{i}"),
        )
    order = sorted((NOW + i % 2, f"cal_{i}") for i in range(5))
    first = await recordings.of_grant(grant_id=s.grant_id, after=None, limit=3)
    assert [(r.created_at, r.id) for r in first] == order[:3]
    rest = await recordings.of_grant(
        grant_id=s.grant_id, after=(first[-1].created_at, first[-1].id), limit=3
    )
    assert [(r.created_at, r.id) for r in rest] == order[3:]
    by_jti = await recordings.of_grant(jti=s.jti, after=None, limit=10)
    assert [r.id for r in by_jti] == [i for _, i in order]
    assert await recordings.of_grant(grant_id="grt_other", after=None, limit=10) == []
    assert await recordings.of_grant(jti="jti-other", after=None, limit=10) == []


async def test_a_sweep_deletes_old_heads_and_keeps_the_entries(
    store: Store, recordings: RecordingStore
) -> None:
    s = await seed(store)
    for i in range(5):
        await recordings.record(
            recording(s, f"cal_{i}", submission_id=f"sub-{i}", created_at=NOW + i),
            entry(s, f"cal_{i}"),
        )
    assert await recordings.sweep(NOW + 3, now=NOW + 100, limit=2) == 2
    assert await recordings.sweep(NOW + 3, now=NOW + 100, limit=2) == 1
    assert await recordings.sweep(NOW + 3, now=NOW + 100, limit=2) == 0
    for i in range(5):
        found = await recordings.get(f"cal_{i}")
        assert found is not None
        if i < 3:
            assert (found.request_head, found.response_head, found.swept_at) == (
                None,
                None,
                NOW + 100,
            )
        else:
            assert found.request_head is not None and found.swept_at is None
        assert f'"call_id":"cal_{i}"' in found.entry_body
    assert len(await store.ledger()) == 5
