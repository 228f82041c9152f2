"""The trust domains port (``storage.trust_domains``) in SQL."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from authority.ledger.entries import Entry
from authority.secrets import valid_id
from authority.storage.registry import Position, RowPage, Stale, Taken, Written
from authority.storage.schema import trust_domains
from authority.storage.trust_domains import TrustDomainRow

from .registry import Table


class SqlTrustDomainStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._domains = Table(
            engine,
            trust_domains,
            TrustDomainRow,
            json=frozenset({"static_jwks", "claim_mapping"}),
            unique=(("name",),),
        )

    async def get(self, domain_id: str) -> TrustDomainRow | None:
        return await self._domains.get(domain_id)

    async def many(self, domain_ids: Collection[str]) -> list[TrustDomainRow]:
        wanted = [i for i in domain_ids if valid_id(i)]
        if not wanted:
            return []
        query = select(trust_domains).where(trust_domains.c.id.in_(wanted))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [self._domains.load(row) for row in rows]

    async def page(self, *, limit: int, after: Position | None) -> RowPage[TrustDomainRow]:
        return await self._domains.page(limit=limit, after=after)

    async def create(
        self, domain: TrustDomainRow, entries: Sequence[Entry]
    ) -> TrustDomainRow | Taken:
        return await self._domains.create(domain, entries)

    async def replace(
        self, expected: TrustDomainRow, new: TrustDomainRow, *, entries: Sequence[Entry] = ()
    ) -> Written[TrustDomainRow] | Stale | Taken:
        return await self._domains.replace(expected, new, entries=entries)
