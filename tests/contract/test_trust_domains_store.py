"""The trust domains port's contract (``authority.storage.trust_domains``), on every
backend: rows and their JSON read back, names unique, a replace only of the row read,
and the entries written with the change or not at all."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from authority.app import build_services
from authority.ledger.entries import Entry, MalformedEntry
from authority.settings import Settings
from authority.storage.hot import MemoryHotState
from authority.storage.introspection import IntrospectionStore
from authority.storage.memory import Tables
from authority.storage.memory.introspection import MemoryIntrospectionStore
from authority.storage.memory.revocation import MemoryRevocationStore
from authority.storage.memory.trust_domains import MemoryTrustDomainStore
from authority.storage.registry import STALE, TAKEN, Written
from authority.storage.trust_domains import TrustDomainRow, TrustDomainStore

from .registry_support import MALFORMED
from .support import NOW, Store


@dataclasses.dataclass
class Domains:
    store: TrustDomainStore
    ledger: Store


@pytest.fixture
async def domains(sql_settings: Settings | None) -> AsyncIterator[Domains]:
    if sql_settings is None:
        tables = Tables()
        introspection: IntrospectionStore = MemoryIntrospectionStore(tables)
        yield Domains(
            MemoryTrustDomainStore(tables),
            Store(introspection, MemoryRevocationStore(tables), tables, None),
        )
        return
    services = build_services(sql_settings, hot=MemoryHotState())
    try:
        yield Domains(
            services.trust_domain_store,
            Store(services.introspection_store, services.revocation_store, None, services),
        )
    finally:
        await services.sql.close()
        await services.engine.dispose()


def changed(object_type: str, object_id: str, change: str = "created") -> Entry:
    """A ``registry_changed`` entry of a trust domain: version 3 records them."""
    record = {"object_type": object_type, "object_id": object_id, "change": change}
    return ("registry_changed", 3, NOW, {**record, "changes": {}, "actor": "key_admin"})


def domain(domain_id: str = "td_1", name: str = "github", **changes: object) -> TrustDomainRow:
    row = TrustDomainRow(
        id=domain_id,
        name=name,
        preset="github",
        issuer="https://token.actions.githubusercontent.com",
        audience="https://authority.example",
        key_source="static_jwks",
        key_location=None,
        static_jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "e1"}]},
        claim_mapping={"azp": "app"},
        status="active",
        version=1,
        created_at=NOW,
        updated_at=NOW,
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


async def test_created_read_back_and_many(domains: Domains) -> None:
    first, second = domain(), domain("td_2", "gitlab", static_jwks=None, key_location="https://k")
    assert await domains.store.create(first, [changed("trust_domain", "td_1")]) == first
    assert await domains.store.create(second, ()) == second
    assert await domains.store.get("td_1") == first
    assert await domains.store.get("td_unknown") is None
    found = await domains.store.many(["td_2", "td_1", "td_unknown", "not an id!"])
    assert sorted(d.id for d in found) == ["td_1", "td_2"]
    assert await domains.store.many([]) == []
    page = await domains.store.page(limit=1, after=None)
    assert len(page.rows) == 1 and page.last is not None
    assert [e["object_id"] for e in await domains.ledger.ledger()] == ["td_1"]


async def test_names_are_unique_and_replace_is_of_the_row_read(domains: Domains) -> None:
    await domains.store.create(domain(), ())
    assert await domains.store.create(domain("td_2"), [changed("trust_domain", "td_2")]) is TAKEN
    disabled = domain(status="disabled", version=2)
    written = await domains.store.replace(
        domain(), disabled, entries=[changed("trust_domain", "td_1", "updated")]
    )
    assert isinstance(written, Written) and written.row == disabled
    assert await domains.store.replace(domain(), domain(audience="x")) is STALE
    with pytest.raises(MalformedEntry):
        await domains.store.replace(disabled, domain(version=3), entries=[MALFORMED])
    assert await domains.store.get("td_1") == disabled
    assert [e["change"] for e in await domains.ledger.ledger()] == ["updated"]
