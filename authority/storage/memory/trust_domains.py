"""The trust domains port (``storage.trust_domains``) on ``Tables``."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from authority.ledger.entries import Entry
from authority.storage.registry import Position, RowPage, Stale, Taken, Written
from authority.storage.trust_domains import TrustDomainRow

from . import Tables
from .registry import Table


class MemoryTrustDomainStore:
    def __init__(self, tables: Tables) -> None:
        self._domains = Table(
            tables,
            tables.trust_domains,
            TrustDomainRow,
            json=frozenset({"static_jwks", "claim_mapping"}),
            unique=(("name",),),
        )

    async def get(self, domain_id: str) -> TrustDomainRow | None:
        return self._domains.get(domain_id)

    async def many(self, domain_ids: Collection[str]) -> list[TrustDomainRow]:
        found = (self._domains.get(domain_id) for domain_id in set(domain_ids))
        return [row for row in found if row is not None]

    async def page(self, *, limit: int, after: Position | None) -> RowPage[TrustDomainRow]:
        return self._domains.page(limit=limit, after=after)

    async def create(
        self, domain: TrustDomainRow, entries: Sequence[Entry]
    ) -> TrustDomainRow | Taken:
        return self._domains.create(domain, entries)

    async def replace(
        self, expected: TrustDomainRow, new: TrustDomainRow, *, entries: Sequence[Entry] = ()
    ) -> Written[TrustDomainRow] | Stale | Taken:
        return self._domains.replace(expected, new, entries=entries)
