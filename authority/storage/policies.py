"""The storage port of the Cedar policy's versions (``authority.policy.versions``).

A version is immutable: its number, text, digest, author, comment and time are written
once. Which version decides exchanges is the latest activation; ``create`` stores a new
version and activates it, ``activate`` makes a stored one active again (a rollback),
each with the flow's ledger entry in the same transaction, so a policy change and its
entry commit together or not at all. Version numbers count from 1 without gaps; changes
at once are written one after the other (two creations get two numbers).
``active_version`` is the one small read every instance repeats to notice a change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One stored version, as listed (without its text)."""

    version: int
    digest: str
    author: str
    comment: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """A stored version with its text."""

    info: PolicyVersion
    text: str


@dataclass(frozen=True, slots=True)
class NewPolicy:
    text: str
    digest: str
    author: str
    comment: str | None
    created_at: int


#: The entry of a change, given the version made active and the one it replaces (None:
#: the first version).
ChangeEntry = Callable[[PolicyVersion, int | None], Entry]


class PolicyStore(Protocol):
    async def active_version(self) -> int | None:
        """The number of the active version; None while no version is stored."""

    async def get(self, version: int) -> StoredPolicy | None:
        """The version ``version`` with its text; None: no such version."""

    async def versions(self) -> list[PolicyVersion]:
        """Every stored version, newest first (a policy has few: no paging)."""

    async def create(
        self, policy: NewPolicy, *, actor: str, entry: ChangeEntry, only_first: bool = False
    ) -> PolicyVersion | None:
        """Store ``policy`` as the next version and activate it (by ``actor``, at its
        ``created_at``), with ``entry``'s entry, in one transaction. With ``only_first``,
        only while no version is stored: None, with nothing written, when one is."""

    async def activate(
        self, version: int, *, actor: str, now: int, entry: ChangeEntry
    ) -> PolicyVersion | None:
        """Make the stored ``version`` active (by ``actor`` at ``now``) with ``entry``'s
        entry, in one transaction; None, with nothing written, for no such version."""
