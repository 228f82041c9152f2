"""The resource servers port's contract (``authority.storage.resource_servers``), on every
backend."""

from __future__ import annotations

import dataclasses

import pytest

from authority.ledger.entries import MalformedEntry
from authority.storage.registry import STALE, TAKEN, Written

from .registry_support import (
    MALFORMED,
    WRITERS,
    Registries,
    changed,
    concurrently,
    ids,
    registries,
    seed_server,
    server,
    tool,
)
from .support import NOW

__all__ = ["registries"]  # the fixture

JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "e1"}]}


async def test_a_server_is_created_with_its_entry_and_read_back(registries: Registries) -> None:
    jwt_server = server("rs_2", "jwt", auth_method="private_key_jwt", secret_hash=None, jwks=JWKS)
    entry = changed("resource_server", "rs_2", changes={"name": "jwt"})
    assert await registries.servers.create(jwt_server, [entry]) == jwt_server
    assert await registries.servers.get("rs_2") == jwt_server
    assert await registries.servers.get("rs_unknown") is None
    assert await registries.servers.get("") is None
    assert [e["object_id"] for e in await registries.store.ledger()] == ["rs_2"]


async def test_pages_continue_after_the_last_row(registries: Registries) -> None:
    for i in range(3):
        await registries.servers.create(server(f"rs_{i}", f"s{i}", created_at=NOW - i), ())
    first = await registries.servers.page(limit=2, after=None)
    assert ids(first.rows) == ["rs_2", "rs_1"] and first.last == (NOW - 1, "rs_1")
    rest = await registries.servers.page(limit=2, after=first.last)
    assert ids(rest.rows) == ["rs_0"] and rest.last is None


async def test_names_and_audiences_are_unique(registries: Registries) -> None:
    await seed_server(registries)
    same_name = server("rs_2", "files", audience="https://other.example")
    same_audience = server("rs_3", "other", audience="https://files.example")
    assert await registries.servers.create(same_name, [changed("resource_server", "rs_2")]) is TAKEN
    assert await registries.servers.create(same_audience, ()) is TAKEN
    assert await registries.store.ledger() == []
    await seed_server(registries, "rs_4", "spare")
    renamed = server("rs_4", "files", audience="https://spare.example")
    assert await registries.servers.replace(server("rs_4", "spare"), renamed) is TAKEN
    assert await registries.servers.get("rs_4") == server("rs_4", "spare")


async def test_one_of_many_concurrent_creators_of_a_name_wins(registries: Registries) -> None:
    results = await concurrently(
        lambda i: registries.servers.create(
            server(f"rs_{i}", "files", audience=f"https://{i}.example"),
            [changed("resource_server", f"rs_{i}")],
        )
    )
    winners = [r for r in results if r is not TAKEN]
    assert len(winners) == 1
    assert ids((await registries.servers.page(limit=100, after=None)).rows) == ids(winners)
    assert len(await registries.store.ledger()) == 1


async def test_a_change_commits_with_its_entry_or_not_at_all(registries: Registries) -> None:
    await seed_server(registries)
    rotated = dataclasses.replace(server(), secret_hash="cd" * 32, updated_at=NOW + 1)
    with pytest.raises(MalformedEntry):
        await registries.servers.replace(server(), rotated, entries=[MALFORMED])
    assert await registries.servers.get("rs_1") == server()
    assert await registries.store.ledger() == []
    with pytest.raises(MalformedEntry):
        await registries.servers.create(server("rs_2", "other"), [MALFORMED])
    assert await registries.servers.get("rs_2") is None
    entry = changed("resource_server", "rs_1", "secret_rotated")
    assert await registries.servers.replace(server(), rotated, entries=[entry]) == Written(rotated)
    assert [e["change"] for e in await registries.store.ledger()] == ["secret_rotated"]
    assert await registries.servers.replace(server(), rotated, entries=[entry]) is STALE


async def test_one_of_many_concurrent_changes_of_a_read_wins(registries: Registries) -> None:
    await seed_server(registries)
    results = await concurrently(
        lambda i: registries.servers.replace(
            server(),
            server(secret_hash=f"{i:064d}"),
            entries=[changed("resource_server", "rs_1", "secret_rotated")],
        )
    )
    winners = [r for r in results if isinstance(r, Written)]
    assert len(winners) == 1
    assert results.count(STALE) == WRITERS - 1
    assert await registries.servers.get("rs_1") == winners[0].row
    assert len(await registries.store.ledger()) == 1


async def test_whether_a_server_hosts_active_tools(registries: Registries) -> None:
    await seed_server(registries)
    await seed_server(registries, "rs_2", "other")
    assert not await registries.servers.hosts_active_tools("rs_1")
    await registries.tools.create(tool("tool_1", "files.read", "rs_1"), ())
    await registries.tools.create(tool("tool_2", "other.read", "rs_2", status="retired"), ())
    assert await registries.servers.hosts_active_tools("rs_1")
    assert not await registries.servers.hosts_active_tools("rs_2")
