"""Appends in the caller's transaction; the sequencer's leaves, nodes and checkpoints."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text

from authority.clock import FrozenClock
from authority.context import Services
from authority.ledger import store
from authority.ledger.checkpoints import ledger_keyset, verify_checkpoint
from authority.ledger.entries import MalformedEntry
from authority.ledger.merkle import MemoryTree, verify_consistency, verify_inclusion
from authority.ledger.sequencer import Sequencer
from authority.storage.schema import ledger_checkpoints, ledger_entries, ledger_leaves
from authority.storage.sql.ledger import append
from authority.storage.sql.sequencer import ADVISORY_LOCK_KEY
from tests.unit.ledger.records import grant


async def add(services: Services, first: int, count: int) -> None:
    async with services.engine.begin() as conn:
        for n in range(first, first + count):
            await append(
                conn,
                kind="grant",
                version=1,
                created_at=services.now(),
                record=grant(n, "issued" if n % 4 == 0 else "denied"),
            )


async def entry_count(services: Services) -> int:
    """Entries already there (the keyring records its first keys at start-up)."""
    async with services.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(ledger_entries)) or 0)


def ledger_jwks(services: Services) -> dict[str, object]:
    return services.keyring.jwks(purpose="ledger")


async def bodies(services: Services) -> list[str]:
    query = (
        select(ledger_entries.c.body)
        .select_from(ledger_leaves.join(ledger_entries))
        .order_by(ledger_leaves.c.leaf_index)
    )
    async with services.engine.connect() as conn:
        return list((await conn.execute(query)).scalars())


async def entry_at(services: Services, leaf_index: int) -> int | None:
    async with services.engine.connect() as conn:
        value = await conn.scalar(
            select(ledger_leaves.c.entry_id).where(ledger_leaves.c.leaf_index == leaf_index)
        )
    return None if value is None else int(value)


async def floor(services: Services, sequencer: Sequencer) -> int | None:
    """The floor the sequencer's next round would scan from."""
    async with services.sequencer_store.round() as sequencing:
        assert sequencing is not None
        return await sequencer._floor(sequencing)


async def test_malformed_record_writes_nothing(services: Services) -> None:
    before = await entry_count(services)

    async def malformed() -> None:
        async with services.engine.begin() as conn:
            await append(conn, kind="grant", version=1, created_at=1, record={"grant_id": "g"})

    with pytest.raises(MalformedEntry):
        await malformed()
    assert await entry_count(services) == before


async def test_rolled_back_effect_rolls_back_its_entry(services: Services) -> None:
    before = await entry_count(services)

    async def effect_that_fails() -> None:
        async with services.engine.begin() as conn:
            await append(conn, kind="grant", version=1, created_at=1, record=grant(1))
            raise RuntimeError("the effect failed")

    with pytest.raises(RuntimeError):
        await effect_that_fails()
    assert await entry_count(services) == before


async def test_sequencing_builds_the_tree_and_signs_checkpoints(
    services: Services, sequencer: Sequencer
) -> None:
    base = await entry_count(services)
    await sequencer.run_once()
    assert await sequencer.run_once() is None  # nothing new: no new checkpoint
    await add(services, 0, 20)  # three batches of 7
    checkpoint = await sequencer.run_once()
    assert checkpoint is not None and checkpoint.tree_size == base + 20

    reference = MemoryTree()
    for body in await bodies(services):
        reference.append(body.encode())
    assert reference.size == base + 20
    assert checkpoint.root_hash == reference.root()

    verified = verify_checkpoint(checkpoint.signed, ledger_keyset(ledger_jwks(services)))
    assert (verified.tree_size, verified.root_hash) == (base + 20, reference.root())
    assert verified.kid == services.keyring.active_kid("ledger")
    async with services.engine.connect() as conn:
        sizes = list(
            (
                await conn.execute(
                    select(ledger_checkpoints.c.tree_size).order_by(ledger_checkpoints.c.tree_size)
                )
            ).scalars()
        )
        # One checkpoint per batch transaction.
        assert sizes[-3:] == [base + 7, base + 14, base + 20]
    assert await services.ledger_reader.tree_size() == base + 20
    assert await store.root_at(services.ledger_reader, 13) == reference.root(13)

    await add(services, 20, 5)
    checkpoint = await sequencer.run_once()
    assert checkpoint is not None and checkpoint.tree_size == base + 25


async def test_a_token_key_does_not_verify_checkpoints(
    services: Services, sequencer: Sequencer
) -> None:
    await add(services, 0, 3)
    checkpoint = await sequencer.run_once()
    assert checkpoint is not None
    with pytest.raises(ValueError, match="unknown key"):
        verify_checkpoint(checkpoint.signed, ledger_keyset(services.keyring.jwks(purpose="token")))


async def test_proofs_from_stored_nodes(services: Services, sequencer: Sequencer) -> None:
    await add(services, 0, 43)
    await sequencer.run_once()
    reference = MemoryTree()
    for body in await bodies(services):
        reference.append(body.encode())
    tree = services.ledger_reader
    for size in (1, 2, 7, 16, 33, 45):
        for index in {0, size // 2, size - 1}:
            proof = await store.inclusion_proof(tree, index, size)
            assert proof.path == reference.inclusion_proof(index, size)
            verify_inclusion(proof.leaf_hash, index, size, proof.path, reference.root(size))
        for first in {1, size // 3 or 1, size - 1 or 1, size}:
            cproof = await store.consistency_proof(tree, first, size)
            verify_consistency(
                first, size, reference.root(first), reference.root(size), cproof.path
            )
    with pytest.raises(store.NoSuchTreeSize):
        await store.inclusion_proof(tree, 3, 46)
    with pytest.raises(store.NoSuchTreeSize):
        await store.consistency_proof(tree, 0, 5)


async def test_another_instance_picks_up_the_tree(
    services: Services, sequencer: Sequencer, clock: FrozenClock
) -> None:
    other = Sequencer(
        services.sequencer_store,
        services.keyring,
        clock,
        issuer=services.settings.issuer,
        interval=1,
        straggler_window=300,
    )
    base = await entry_count(services)
    await add(services, 0, 11)
    await sequencer.run_once()
    await add(services, 11, 6)
    # The other instance loads the tree's frontier from the stored nodes.
    picked_up = await other.run_once()
    assert picked_up is not None and picked_up.tree_size == base + 17
    await add(services, 17, 9)
    checkpoint = await sequencer.run_once()  # its cached state is stale: reloads
    reference = MemoryTree()
    for body in await bodies(services):
        reference.append(body.encode())
    assert checkpoint is not None and checkpoint.root_hash == reference.root()


async def test_floor_trails_by_the_straggler_window(
    services: Services, sequencer: Sequencer, clock: FrozenClock
) -> None:
    base = await entry_count(services)
    await add(services, 0, 10)
    await sequencer.run_once()
    if services.engine.dialect.name == "sqlite":
        # One writer at a time: the floor is simply the highest sequenced entry.
        assert await floor(services, sequencer) == await entry_at(services, base + 9)
        return
    assert await floor(services, sequencer) is None  # no checkpoint is old enough yet
    clock.advance(services.settings.ledger_straggler_window + 1)
    assert await floor(services, sequencer) == await entry_at(services, base + 9)
    await add(services, 10, 3)
    checkpoint = await sequencer.run_once()
    assert checkpoint is not None and checkpoint.tree_size == base + 13


async def test_late_committing_lower_id_is_sequenced(
    services: Services, sequencer: Sequencer
) -> None:
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    base = await entry_count(services)
    async with services.engine.connect() as slow:
        await slow.begin()
        await append(slow, kind="grant", version=1, created_at=services.now(), record=grant(0))
        await add(services, 1, 3)  # higher ids, committed first
        first = await sequencer.run_once()
        assert first is not None and first.tree_size == base + 3
        await slow.commit()
    second = await sequencer.run_once()
    assert second is not None and second.tree_size == base + 4
    async with services.engine.connect() as conn:
        late = await conn.scalar(
            select(ledger_entries.c.body)
            .select_from(ledger_leaves.join(ledger_entries))
            .where(ledger_leaves.c.leaf_index == base + 3)
        )
    assert late is not None and '"grant_id":"grt_00000000"' in late


async def test_one_sequencer_at_a_time(services: Services, sequencer: Sequencer) -> None:
    if services.engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    base = await entry_count(services)
    await add(services, 0, 3)
    async with services.engine.begin() as holder:
        await holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        assert await sequencer.run_once() is None  # another instance is sequencing
    checkpoint = await sequencer.run_once()
    assert checkpoint is not None and checkpoint.tree_size == base + 3


async def test_background_task_checkpoints_under_traffic(
    services: Services, clock: FrozenClock
) -> None:
    fast = Sequencer(
        services.sequencer_store,
        services.keyring,
        clock,
        issuer=services.settings.issuer,
        interval=0.02,
        straggler_window=300,
    )
    base = await entry_count(services)
    fast.start()
    try:
        await add(services, 0, 4)
        for _ in range(300):
            if await services.ledger_reader.tree_size() == base + 4:
                break
            await asyncio.sleep(0.01)
        assert await services.ledger_reader.tree_size() == base + 4
        latest = await services.ledger_reader.latest_checkpoint()
        assert latest is not None and latest.tree_size == base + 4
    finally:
        await fast.stop()
