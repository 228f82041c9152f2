"""The revocation feed's read port: events after a position, and what they concern.

Events are read in id order, which is commit order (``storage.sql.events``), so "after
N" is a gap-free prefix of what is still to come. Which resource servers an event
concerns is the feed's rule (``authority.revocations.events``, "who hears what"); this
port reads, for a batch, the rows that rule looks at: the grants of the tokens, the
delegations named or reachable, and the tools they name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from authority.storage.events import RevocationEvent


@dataclass(frozen=True, slots=True)
class Live:
    """The events that can still revoke a token at ``now``: those without an expiry, those
    expiring after ``now``, and those written at or after ``written_since``."""

    now: int
    written_since: int


@dataclass(frozen=True, slots=True)
class Subjects:
    """What a batch of events names, whose stored rows the feed's rule needs."""

    jtis: frozenset[str] = frozenset()
    delegation_ids: frozenset[str] = frozenset()
    agent_ids: frozenset[str] = frozenset()
    owner_ids: frozenset[str] = frozenset()
    #: The delegations of ``agent_ids`` and ``owner_ids`` that expire after this time.
    expiring_after: int = 0
    #: Tools named by the events themselves (retired tools).
    tools: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Scope:
    """A delegation as the feed needs it: whose it is, until when, and its tools."""

    id: str
    agent_id: str
    owner_id: str
    expires_at: int
    tools: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Stored:
    """The stored rows behind ``Subjects``."""

    #: jti -> the ids of the resource servers whose audience is the grant's (empty when
    #: none is registered); a jti without a grant is absent.
    token_servers: Mapping[str, frozenset[str]]
    #: The delegations of ``delegation_ids``, and those of ``agent_ids`` or ``owner_ids``
    #: expiring after ``expiring_after`` (in no particular order).
    scopes: tuple[Scope, ...]
    #: tool name -> the id of its resource server, for every existing tool that a scope
    #: or ``Subjects.tools`` names.
    hosts: Mapping[str, str]


class EventReader(Protocol):
    async def last_id(self) -> int:
        """The highest event id written, 0 before the first."""

    async def after(
        self, event_id: int, limit: int, *, live: Live | None = None
    ) -> list[RevocationEvent]:
        """Up to ``limit`` events with an id above ``event_id``, by increasing id; with
        ``live``, only those it admits. ``servers`` is left unresolved (None)."""

    async def stored(self, subjects: Subjects) -> Stored:
        """The rows behind ``subjects``: one read, however many events named them."""
