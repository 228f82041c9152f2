"""The storage port of the trust domains registry (``management.trust_domains``).

A domain's name is unique (``TAKEN``). Registering and changing a domain each append
their ledger entry in the same transaction; the exchange reads the domains an agent's
identity rules name (``many``). See ``storage.registry``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from authority.ledger.entries import Entry
from authority.storage.registry import Position, RowPage, Stale, Taken, Written


@dataclass(frozen=True, slots=True)
class TrustDomainRow:
    id: str
    name: str
    preset: str  # federation.model.Preset
    issuer: str
    audience: str
    key_source: str  # federation.model.KeySource
    key_location: str | None
    static_jwks: dict[str, Any] | None
    claim_mapping: dict[str, str]
    status: str  # active | disabled
    version: int  # counts the changes: verifiers key their caches by it
    created_at: int
    updated_at: int


class TrustDomainStore(Protocol):
    async def get(self, domain_id: str) -> TrustDomainRow | None:
        """The domain, or None."""

    async def many(self, domain_ids: Collection[str]) -> list[TrustDomainRow]:
        """The domains of these ids that exist, in no particular order."""

    async def page(self, *, limit: int, after: Position | None) -> RowPage[TrustDomainRow]:
        """Up to ``limit`` domains after ``after`` in (created_at, id) order."""

    async def create(
        self, domain: TrustDomainRow, entries: Sequence[Entry]
    ) -> TrustDomainRow | Taken:
        """Insert the domain and append ``entries``, unless its name is taken."""

    async def replace(
        self, expected: TrustDomainRow, new: TrustDomainRow, *, entries: Sequence[Entry] = ()
    ) -> Written[TrustDomainRow] | Stale | Taken:
        """Store ``new`` and append ``entries`` if the domain is still ``expected`` and
        a new name is free."""
