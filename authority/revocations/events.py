"""Revocation events: one row in ``revocation_events`` per revocation, numbered in commit order.

Every revocation writes its event in the transaction that makes it effective: a token
revoked (RFC 7009), a delegation revoked, an agent quarantined, an owner's kill switch.
The row's id is the event id of the feed (``authority.revocations.feed``), and the feed
promises "no gaps": a subscriber that has seen id N has seen every event below N. That
holds only if ids become visible in the order they are drawn, so:

* on PostgreSQL, ``record`` takes a transaction-level advisory lock just before it
  inserts, held until commit: the next writer draws its id only after this one's commit
  is visible. The insert is the last statement of every transaction that records an
  event, so the lock is held for one insert and a commit, and a holder never waits for
  anything another writer could hold (no deadlock);
* on SQLite, writers are serialised already (``BEGIN IMMEDIATE``).

After commit, ``publish`` wakes every instance's feed through hot-state pub/sub. The
notice carries the event, but feeds re-read SQL rather than trust it; a lost notice
(Redis down, a subscriber reconnecting) costs at most ``revocation_feed_poll_interval``
of delay, never an event. A failed publish is therefore logged, not raised: the
revocation is already in force for every instance, which read it from SQL.

Event kinds, their members, and what a resource server verifying tokens locally does:

* ``token`` (jti, delegation_id, agent_id, owner_id): reject the token with that ``jti``;
* ``delegation`` (delegation_id, agent_id, owner_id): reject every token of the
  delegation (a revoked delegation never comes back);
* ``agent`` (agent_id, owner_id): reject tokens whose ``act.sub`` is the agent and whose
  ``iat`` is at or before ``time`` (a release emits nothing: later tokens are fine);
* ``owner`` (owner_id): reject tokens whose ``sub`` is the owner and ``iat`` <= ``time``.

``expires_at``: after this time no token the event applies to can still be valid, so a
subscriber may forget the event.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.context import Services
from authority.settings import Settings
from authority.storage.hot import HotStateUnavailable
from authority.storage.schema import revocation_events

log = logging.getLogger("authority.revocations")

Kind = Literal["token", "delegation", "agent", "owner"]
#: The hot-state pub/sub channel every instance's feed listens on.
CHANNEL = "revocations"

_ADVISORY_LOCK = int.from_bytes(
    hashlib.sha256(b"authority.revocation_events").digest()[:8], "big", signed=True
)


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    id: int
    kind: str
    time: int
    expires_at: int | None
    jti: str | None = None
    delegation_id: str | None = None
    agent_id: str | None = None
    owner_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The event as the feed sends it: absent members are omitted, not null."""
        members = {
            "id": self.id,
            "kind": self.kind,
            "time": self.time,
            "expires_at": self.expires_at,
            "jti": self.jti,
            "delegation_id": self.delegation_id,
            "agent_id": self.agent_id,
            "owner_id": self.owner_id,
        }
        return {name: value for name, value in members.items() if value is not None}


def cascade_expiry(settings: Settings, now: int) -> int:
    """When a delegation, agent or owner event stops mattering: every token issued before
    it has expired by then (no token lives longer than the server's cap)."""
    return now + settings.access_token_max_lifetime + settings.clock_skew


async def record(
    conn: AsyncConnection,
    *,
    kind: Kind,
    now: int,
    expires_at: int | None,
    jti: str | None = None,
    delegation_id: str | None = None,
    agent_id: str | None = None,
    owner_id: str | None = None,
) -> RevocationEvent:
    """Insert one event in the caller's transaction; call it as the last statement."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK)))
    values = {
        "created_at": now,
        "kind": kind,
        "jti": jti,
        "delegation_id": delegation_id,
        "agent_id": agent_id,
        "owner_id": owner_id,
        "expires_at": expires_at,
    }
    result = await conn.execute(
        revocation_events.insert().values(**values).returning(revocation_events.c.id)
    )
    return RevocationEvent(
        id=int(result.scalar_one()),
        kind=kind,
        time=now,
        expires_at=expires_at,
        jti=jti,
        delegation_id=delegation_id,
        agent_id=agent_id,
        owner_id=owner_id,
    )


async def publish(services: Services, events: Sequence[RevocationEvent]) -> None:
    """Wake every instance's feed; call after the commit. Never raises for hot state."""
    for event in events:
        try:
            await services.hot.publish(CHANNEL, orjson.dumps(event.as_json()))
        except HotStateUnavailable as exc:
            log.warning("revocation event %d not published (%s); feeds poll SQL", event.id, exc)


def _event(row: Row[Any]) -> RevocationEvent:
    return RevocationEvent(
        id=int(row.id),
        kind=row.kind,
        time=int(row.created_at),
        expires_at=row.expires_at,
        jti=row.jti,
        delegation_id=row.delegation_id,
        agent_id=row.agent_id,
        owner_id=row.owner_id,
    )


async def read_after(conn: AsyncConnection, after: int, limit: int) -> list[RevocationEvent]:
    """Events with id > ``after``, oldest first: a prefix of what is still to come."""
    query = (
        select(revocation_events)
        .where(revocation_events.c.id > after)
        .order_by(revocation_events.c.id)
        .limit(limit)
    )
    return [_event(row) for row in (await conn.execute(query)).all()]


async def last_id(conn: AsyncConnection) -> int:
    value = (await conn.execute(select(func.max(revocation_events.c.id)))).scalar()
    return int(value or 0)
