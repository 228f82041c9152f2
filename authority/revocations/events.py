"""Revocation events: one row in ``revocation_events`` per revocation, numbered in commit order.

Every revocation writes its event in the transaction that makes it effective: a token
revoked (RFC 7009), a delegation revoked, an agent quarantined, an owner's kill switch.
The row's id is the event id of the feed (``authority.revocations.feed``), and the feed
promises "no gaps": a subscriber that has seen id N has seen every event below N that
concerns it and can still revoke a live token (``concerned``, ``is_live``). That
holds only if ids become visible in the order they are drawn, so:

* on PostgreSQL, ``record`` takes a transaction-level advisory lock just before it
  inserts, held until commit: the next writer draws its id only after this one's commit
  is visible. The insert is the last statement of every transaction that records an
  event, so the lock is held for one insert and a commit, and a holder never waits for
  anything another writer could hold (no deadlock);
* on SQLite, writers are serialised already (``BEGIN IMMEDIATE``).

(The insert is ``storage.sql.events.record``; the feed reads through its port,
``storage.event_reader``.)

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
* ``owner`` (owner_id): reject tokens whose ``sub`` is the owner and ``iat`` <= ``time``;
* ``tool`` (tool): the tool is retired: reject tokens whose ``authorization_details``
  name it and whose ``iat`` is at or before ``time`` (introspection refuses them too).

``expires_at``: after this time no token the event applies to can still be valid, so a
subscriber may forget the event.

Who hears what (``concerned``): every event is resolved, when a feed reads it, to the
resource servers it concerns, and a stream carries only those (``RevocationEvent.servers``);
the rows the rule looks at are read through the port, the rule is applied here:

* ``token``: the resource server that is the token's audience (its grant's ``audience``);
* ``delegation``: the resource servers hosting a tool the delegation's scope names;
* ``agent``, ``owner``: the resource servers hosting a tool named by any delegation of that
  agent or owner that had not expired ``access_token_max_lifetime + clock_skew`` before the
  event;
* ``tool``: the resource server hosting the tool.

The rule never withholds an event a server needs: a token is only ever issued under a
delegation, for one tool of its scope, with the tool's resource server as audience, and a
delegation's scope, a tool's resource server and a server's audience never change once
written. So every token an event revokes was issued for a server in the event's set, and
that set is the same whenever it is computed (a delegation created after the read
cannot have tokens issued before the event). A delegation expired for longer than a token
can live has no token left. An event whose subject cannot be found (no such grant or
delegation: not written by this code) goes to every server: withholding it could let a
token through, sending it costs only privacy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import orjson

from authority.context import Services
from authority.settings import Settings
from authority.storage.event_reader import EventReader, Live, Scope, Subjects
from authority.storage.events import RevocationEvent
from authority.storage.hot import HotStateUnavailable

log = logging.getLogger("authority.revocations")

#: The hot-state pub/sub channel every instance's feed listens on.
CHANNEL = "revocations"


def cascade_expiry(settings: Settings, now: int) -> int:
    """When a delegation, agent or owner event stops mattering: every token issued before
    it has expired by then (no token lives longer than the server's cap)."""
    return now + settings.access_token_max_lifetime + settings.clock_skew


async def publish(services: Services, events: Sequence[RevocationEvent]) -> None:
    """Wake every instance's feed; call after the commit. Never raises for hot state."""
    for event in events:
        try:
            await services.hot.publish(CHANNEL, orjson.dumps(event.as_json()))
        except HotStateUnavailable as exc:
            log.warning("revocation event %d not published (%s); feeds poll SQL", event.id, exc)


def _token_horizon(settings: Settings, at: int) -> int:
    """No token issued before ``at`` minus this much can still be accepted at ``at``."""
    return at - settings.access_token_max_lifetime - settings.clock_skew


def is_live(event: RevocationEvent, now: int, settings: Settings) -> bool:
    """Whether a token the event revokes could still be accepted somewhere at ``now``.

    Only tokens already issued matter: once a delegation is revoked, an agent quarantined
    or retired, or an owner killed or retired, the authority refuses every exchange that
    would issue a new token under it, and a token lives at most
    ``access_token_max_lifetime`` (plus ``clock_skew`` for the verifier's leeway). So an
    event older than that has nothing left to revoke, however permanent its effect, and a
    subscriber that starts now needs exactly the live events. ``expires_at`` says the same
    for most events; the age test also covers an event written under a smaller cap.
    """
    if event.expires_at is None or event.expires_at > now:
        return True
    return event.time >= _token_horizon(settings, now)


def _live(now: int, settings: Settings) -> Live:
    """``is_live`` as the port reads it."""
    return Live(now=now, written_since=_token_horizon(settings, now))


async def read_after(
    reader: EventReader,
    after: int,
    limit: int,
    *,
    settings: Settings,
    live_at: int | None = None,
) -> list[RevocationEvent]:
    """Events with id > ``after``, oldest first, each with the servers it concerns.

    A prefix of what is still to come; with ``live_at``, only the events still live then
    (``is_live``), which is a prefix of what a subscriber starting then needs.
    """
    live = None if live_at is None else _live(live_at, settings)
    batch = await reader.after(after, limit, live=live)
    return await concerned(reader, batch, settings)


def _subjects(batch: Sequence[RevocationEvent], settings: Settings) -> Subjects:
    """What the batch's events name: the rows ``concerned`` needs, for one read."""
    agents = frozenset(e.agent_id for e in batch if e.kind == "agent" and e.agent_id)
    owners = frozenset(e.owner_id for e in batch if e.kind == "owner" and e.owner_id)
    expiring_after = 0
    if agents or owners:
        # The delegations any of the batch's agent or owner events can reach: those that
        # had not expired a token's lifetime before the oldest of them.
        oldest = min(e.time for e in batch if e.kind in ("agent", "owner"))
        expiring_after = _token_horizon(settings, oldest)
    return Subjects(
        jtis=frozenset(e.jti for e in batch if e.kind == "token" and e.jti is not None),
        delegation_ids=frozenset(
            e.delegation_id for e in batch if e.kind == "delegation" and e.delegation_id
        ),
        agent_ids=agents,
        owner_ids=owners,
        expiring_after=expiring_after,
        tools=frozenset(e.tool for e in batch if e.kind == "tool" and e.tool is not None),
    )


async def concerned(
    reader: EventReader, batch: Sequence[RevocationEvent], settings: Settings
) -> list[RevocationEvent]:
    """``batch`` with ``servers`` resolved by the rule in the module docstring.

    One read of the port per batch, whatever its size (``EventReader.stored``).
    """
    if not batch:
        return []
    stored = await reader.stored(_subjects(batch, settings))
    by_jti, scopes, hosts = stored.token_servers, stored.scopes, stored.hosts

    def hosting(chosen: Sequence[Scope]) -> frozenset[str]:
        return frozenset(hosts[n] for scope in chosen for n in scope.tools if n in hosts)

    resolved: list[RevocationEvent] = []
    for event in batch:
        servers: frozenset[str] | None = None  # not resolvable: every server
        if event.kind == "token" and event.jti is not None:
            servers = by_jti.get(event.jti)
        elif event.kind == "delegation" and event.delegation_id is not None:
            own = [s for s in scopes if s.id == event.delegation_id]
            servers = hosting(own) if own else None
        elif event.kind == "agent" and event.agent_id is not None:
            since = _token_horizon(settings, event.time)
            servers = hosting(
                [s for s in scopes if s.agent_id == event.agent_id and s.expires_at > since]
            )
        elif event.kind == "owner" and event.owner_id is not None:
            since = _token_horizon(settings, event.time)
            servers = hosting(
                [s for s in scopes if s.owner_id == event.owner_id and s.expires_at > since]
            )
        elif event.kind == "tool" and event.tool is not None and event.tool in hosts:
            servers = frozenset({hosts[event.tool]})
        resolved.append(replace(event, servers=servers))
    return resolved
