"""The revocation feed's read port (``storage.event_reader``) on every backend, with the
feed's rule (``revocations.events.concerned``) resolving each kind of event over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from authority.revocations import events
from authority.settings import Settings
from authority.storage.event_reader import EventReader, Live, Subjects
from authority.storage.events import Kind, RevocationEvent
from authority.storage.memory.event_reader import MemoryEventReader
from authority.storage.sql import events as sql_events
from tests.conftest import TEST_SECRET

from .support import NOW, Store, seed

#: Every event below is written at NOW; tokens live at most this long (plus the skew).
LIFETIME = 60
SKEW = 5
PAST = NOW - LIFETIME - SKEW  # tokens issued before this are dead at NOW


@dataclass
class Feed:
    store: Store
    reader: EventReader
    settings: Settings

    async def record(self, kind: Kind, *, now: int = NOW, **members: Any) -> RevocationEvent:
        expires_at = members.pop("expires_at", now + LIFETIME + SKEW)
        if self.store.tables is not None:
            rows = self.store.tables.revocation_events
            row = {
                "id": len(rows) + 1,
                "created_at": now,
                "kind": kind,
                "expires_at": expires_at,
                "jti": None,
                "delegation_id": None,
                "agent_id": None,
                "owner_id": None,
                "tool": None,
                **members,
            }
            rows.append(row)
            return RevocationEvent(
                id=row["id"],
                kind=kind,
                time=now,
                expires_at=expires_at,
                **members,
            )
        assert self.store.services is not None
        async with self.store.services.engine.begin() as conn:
            return await sql_events.record(
                conn, kind=kind, now=now, expires_at=expires_at, **members
            )

    async def resolve(self, *batch: RevocationEvent) -> list[frozenset[str] | None]:
        resolved = await events.concerned(self.reader, list(batch), self.settings)
        return [event.servers for event in resolved]


@pytest.fixture
async def feed(store: Store, tmp_path: Path) -> AsyncIterator[Feed]:
    settings = Settings(
        secret_key=TEST_SECRET,
        data_dir=tmp_path,
        auto_migrate=False,
        access_token_max_lifetime=LIFETIME,
        access_token_lifetime=LIFETIME,
        clock_skew=SKEW,
    )
    if store.tables is not None:
        yield Feed(store, MemoryEventReader(store.tables), settings)
        return
    assert store.services is not None
    yield Feed(store, store.services.event_reader, settings)


def scope(*tools: str) -> str:
    return orjson.dumps(
        [{"tool": tool, "resources": ["*"], "actions": ["read"]} for tool in tools]
    ).decode()


async def second_server(feed: Feed) -> None:
    """``rs_2`` hosting ``mail``, and a delegation ``dlg_2`` of ``agt_1`` covering it."""
    stamps = {"created_at": NOW - 100, "updated_at": NOW - 100}
    insert = feed.store.insert
    await insert(
        "resource_servers",
        {
            "id": "rs_2",
            "name": "mail",
            "audience": "https://mail.example",
            "auth_method": "client_secret_basic",
            "secret_hash": "cd" * 32,
            "status": "active",
            **stamps,
        },
    )
    await insert(
        "tools",
        {
            "id": "tool_2",
            "name": "mail",
            "resource_server_id": "rs_2",
            "actions": '["read"]',
            "read_actions": '["read"]',
            "risk_tier": 0,
            "approval_required": False,
            "single_use": False,
            "dpop_required": False,
            "status": "active",
            **stamps,
        },
    )


async def delegation(feed: Feed, delegation_id: str, tools: str, *, expires_at: int) -> None:
    await feed.store.insert(
        "delegations",
        {
            "id": delegation_id,
            "owner_id": "own_1",
            "agent_id": "agt_1",
            "intent": "read things",
            "scope": tools,
            "cnf_jkt": "k" * 43,
            "expires_at": expires_at,
            "calls_used": 0,
            "status": "active",
            "created_at": NOW - 100,
        },
    )


# --- reading ---------------------------------------------------------------------------------
async def test_events_after_an_id_in_id_order(feed: Feed) -> None:
    assert await feed.reader.last_id() == 0
    assert await feed.reader.after(0, 10) == []
    written = [
        await feed.record("token", jti="jti-1", delegation_id="dlg_1", agent_id="agt_1"),
        await feed.record("delegation", delegation_id="dlg_1", agent_id="agt_1", owner_id="o"),
        await feed.record("agent", agent_id="agt_1", owner_id="own_1", expires_at=None),
        await feed.record("owner", owner_id="own_1"),
        await feed.record("tool", tool="files"),
    ]
    ids = [event.id for event in written]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert await feed.reader.last_id() == ids[-1]
    assert await feed.reader.after(0, 10) == written  # every member, servers unresolved
    assert await feed.reader.after(ids[1], 10) == written[2:]
    assert await feed.reader.after(ids[0], 2) == written[1:3]
    assert await feed.reader.after(ids[-1], 10) == []


async def test_only_live_events_when_asked(feed: Feed) -> None:
    """Live at NOW: no expiry, an expiry after NOW, or written at or after ``written_since``."""
    forever = await feed.record("agent", agent_id="agt_1", now=NOW - 1000, expires_at=None)
    expiring = await feed.record("owner", owner_id="own_1", now=NOW - 1000, expires_at=NOW + 1)
    await feed.record("owner", owner_id="own_1", now=NOW - 1000, expires_at=NOW)  # dead
    recent = await feed.record("owner", owner_id="own_1", now=PAST, expires_at=NOW - 1)
    await feed.record("owner", owner_id="own_1", now=PAST - 1, expires_at=NOW - 1)  # dead
    live = Live(now=NOW, written_since=PAST)
    assert await feed.reader.after(0, 10, live=live) == [forever, expiring, recent]
    assert await feed.reader.after(forever.id, 1, live=live) == [expiring]


async def test_live_event_replay_for_a_subscriber_that_starts_now(feed: Feed) -> None:
    """What the feed sends a resource server with no position: every live event, resolved."""
    s = await seed(feed.store)
    await feed.record("owner", owner_id="own_9", now=NOW - 1000, expires_at=NOW - 900)  # dead
    token = await feed.record("token", jti=s.jti, delegation_id=s.delegation_id, now=NOW - 10)
    await feed.record("tool", tool="nothing-here", now=NOW - 1000, expires_at=NOW - 1)  # dead
    tool = await feed.record("tool", tool=s.tool)
    replay = await events.read_after(feed.reader, 0, 100, settings=feed.settings, live_at=NOW)
    assert replay == [
        replace(token, servers=frozenset({s.server_id})),
        replace(tool, servers=frozenset({s.server_id})),
    ]
    assert all(event.concerns(s.server_id) for event in replay)
    assert not any(event.concerns("rs_other") for event in replay)


# --- who hears what --------------------------------------------------------------------------
async def test_a_token_event_concerns_the_server_of_its_audience(feed: Feed) -> None:
    s = await seed(feed.store)
    await feed.store.insert(
        "grants",
        {
            "id": "grt_2",
            "created_at": NOW - 10,
            "decision": "issued",
            "agent_id": s.agent_id,
            "owner_id": s.owner_id,
            "delegation_id": s.delegation_id,
            "tool": s.tool,
            "audience": "https://unregistered.example",
            "jti": "jti-2",
            "token_hash": "ef" * 32,
            "expires_at": NOW + 300,
            "single_use": False,
        },
    )
    ours = await feed.record("token", jti=s.jti)
    unregistered = await feed.record("token", jti="jti-2")
    unknown = await feed.record("token", jti="jti-nobody-issued")
    assert await feed.resolve(ours, unregistered, unknown) == [
        frozenset({s.server_id}),
        frozenset(),  # its audience is no registered server: no one needs it
        None,  # not resolvable: every server
    ]


async def test_a_delegation_event_concerns_the_servers_of_its_tools(feed: Feed) -> None:
    s = await seed(feed.store)
    await second_server(feed)
    await delegation(feed, "dlg_2", scope(s.tool, "mail", "gone"), expires_at=NOW + 3600)
    both = await feed.record("delegation", delegation_id="dlg_2")
    none = await feed.record("delegation", delegation_id=s.delegation_id)  # scope "[]"
    unknown = await feed.record("delegation", delegation_id="dlg_nobody")
    assert await feed.resolve(both, none, unknown) == [
        frozenset({s.server_id, "rs_2"}),
        frozenset(),
        None,
    ]


async def test_agent_and_owner_events_concern_their_unexpired_delegations(feed: Feed) -> None:
    s = await seed(feed.store)
    await second_server(feed)
    await delegation(feed, "dlg_files", scope(s.tool), expires_at=NOW + 3600)
    # Expired longer ago than a token lives: nothing issued under it can be alive.
    await delegation(feed, "dlg_old_mail", scope("mail"), expires_at=PAST)
    agent = await feed.record("agent", agent_id=s.agent_id, owner_id=s.owner_id)
    owner = await feed.record("owner", owner_id=s.owner_id)
    stranger = await feed.record("agent", agent_id="agt_nobody")
    assert await feed.resolve(agent, owner, stranger) == [
        frozenset({s.server_id}),
        frozenset({s.server_id}),
        frozenset(),
    ]
    # Written earlier, the same events still reach the delegation that was alive then.
    agent_then = await feed.record("agent", agent_id=s.agent_id, now=PAST - 10)
    owner_then = await feed.record("owner", owner_id=s.owner_id, now=PAST - 10)
    assert await feed.resolve(agent_then, owner_then) == [
        frozenset({s.server_id, "rs_2"}),
        frozenset({s.server_id, "rs_2"}),
    ]
    # One batch, events of different ages: each is resolved at its own time.
    assert await feed.resolve(agent, agent_then) == [
        frozenset({s.server_id}),
        frozenset({s.server_id, "rs_2"}),
    ]


async def test_a_tool_event_concerns_the_server_hosting_the_tool(feed: Feed) -> None:
    s = await seed(feed.store)
    await second_server(feed)
    files = await feed.record("tool", tool=s.tool)
    mail = await feed.record("tool", tool="mail")
    unknown = await feed.record("tool", tool="never-registered")
    assert await feed.resolve(files, mail, unknown) == [
        frozenset({s.server_id}),
        frozenset({"rs_2"}),
        None,
    ]


async def test_the_stored_rows_behind_a_batch(feed: Feed) -> None:
    """The port's one read: grants by jti, delegations by id or by whose and expiry, and
    the hosts of every tool either names."""
    s = await seed(feed.store)
    await second_server(feed)
    await delegation(feed, "dlg_mail", scope("mail"), expires_at=NOW + 10)
    stored = await feed.reader.stored(
        Subjects(
            jtis=frozenset({s.jti, "jti-unknown"}),
            agent_ids=frozenset({s.agent_id}),
            expiring_after=NOW,
            tools=frozenset({"files", "unknown"}),
        )
    )
    assert dict(stored.token_servers) == {s.jti: frozenset({s.server_id})}
    assert sorted(scope.id for scope in stored.scopes) == [s.delegation_id, "dlg_mail"]
    mail = next(scope for scope in stored.scopes if scope.id == "dlg_mail")
    assert (mail.agent_id, mail.owner_id, mail.expires_at, mail.tools) == (
        s.agent_id,
        s.owner_id,
        NOW + 10,
        ("mail",),
    )
    assert dict(stored.hosts) == {"files": s.server_id, "mail": "rs_2"}
    later = await feed.reader.stored(
        Subjects(owner_ids=frozenset({s.owner_id}), expiring_after=NOW + 10)
    )
    assert [scope.id for scope in later.scopes] == [s.delegation_id]  # dlg_mail: not after
    nothing = await feed.reader.stored(Subjects())
    assert (dict(nothing.token_servers), nothing.scopes, dict(nothing.hosts)) == ({}, (), {})
