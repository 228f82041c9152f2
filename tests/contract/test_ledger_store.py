"""The ledger's ports on every backend: the reader (``storage.ledger_reader``) and the
sequencer's rounds (``storage.sequencer``), driven by the real sequencer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import pytest
from joserfc import jws
from joserfc.jwk import OKPKey

from authority.clock import FrozenClock
from authority.ledger import store as proofs
from authority.ledger.checkpoints import signed_kid
from authority.ledger.entries import entry_row
from authority.ledger.merkle import MemoryTree, leaf_hash, verify_consistency, verify_inclusion
from authority.ledger.sequencer import Sequencer
from authority.storage import schema
from authority.storage.ledger_reader import (
    Checkpoint,
    EntryFilter,
    LedgerReader,
    SequencedEntry,
)
from authority.storage.memory.ledger_reader import MemoryLedgerReader
from authority.storage.memory.sequencer import MemorySequencerStore
from authority.storage.sequencer import Leaf, SequencerStore
from authority.storage.sql.ledger import append
from authority.tokens.jose import registry
from tests.unit.ledger.records import grant

from .support import NOW, Store

SEQUENCERS = 8


class Signer:
    """Signs checkpoints as the keyring would, with a key of the test's own."""

    def __init__(self) -> None:
        self.key = OKPKey.generate_key("Ed25519", parameters={"kid": "ledger-test"})

    def sign(
        self, claims: dict[str, Any], *, typ: str, purpose: Literal["token", "ledger"] = "token"
    ) -> str:
        header = {"alg": "EdDSA", "kid": "ledger-test", "typ": typ}
        return jws.serialize_compact(
            header, orjson.dumps(claims), self.key, registry=registry(["EdDSA"])
        )


@dataclass
class Ledger:
    store: Store
    reader: LedgerReader
    rounds: SequencerStore
    clock: FrozenClock
    bodies: list[str]  # what was appended, in order

    async def append(self, record: dict[str, Any], *, created_at: int = NOW) -> None:
        row = entry_row(kind="grant", version=1, created_at=created_at, record=record)
        self.bodies.append(row["body"])
        if self.store.tables is not None:
            self.store.tables.ledger_entries.append(row)
            return
        assert self.store.services is not None
        async with self.store.services.engine.begin() as conn:
            await append(conn, kind="grant", version=1, created_at=created_at, record=record)

    async def add_key(self, kid: str, purpose: str) -> None:
        row = {
            "kid": kid,
            "purpose": purpose,
            "alg": "EdDSA",
            "public_jwk": orjson.dumps({"kid": kid, "kty": "OKP"}).decode(),
            "private_key": b"sealed",
            "status": "active",
            "created_at": NOW,
        }
        if self.store.tables is not None:
            self.store.tables.signing_keys[kid] = row
            return
        assert self.store.services is not None
        async with self.store.services.engine.begin() as conn:
            await conn.execute(schema.signing_keys.insert().values(**row))

    def sequencer(self, batch: int = 7) -> Sequencer:
        """An instance's sequencer: each has its own in-memory frontier."""
        return Sequencer(
            self.rounds,
            Signer(),
            self.clock,
            issuer="https://authority.example",
            interval=3600,
            straggler_window=300,
            batch_size=batch,
        )

    def reference(self) -> MemoryTree:
        tree = MemoryTree()
        for body in self.bodies:
            tree.append(body.encode())
        return tree


@pytest.fixture
async def ledger(store: Store) -> AsyncIterator[Ledger]:
    clock = FrozenClock(float(NOW))
    if store.tables is not None:
        tables = store.tables
        yield Ledger(store, MemoryLedgerReader(tables), MemorySequencerStore(tables), clock, [])
        return
    assert store.services is not None
    services = store.services
    yield Ledger(store, services.ledger_reader, services.sequencer_store, clock, [])


async def populate(ledger: Ledger, count: int) -> None:
    for n in range(count):
        await ledger.append(grant(n, "issued" if n % 4 == 0 else "denied"), created_at=NOW + n)


async def everything(reader: LedgerReader) -> list[SequencedEntry]:
    return await reader.entries(EntryFilter(), after=None, limit=10_000)


# --- the reader ----------------------------------------------------------------------------
async def test_an_empty_ledger_reads_as_empty(ledger: Ledger) -> None:
    reader = ledger.reader
    assert await reader.tree_size() == 0
    assert await reader.latest_checkpoint() is None
    assert await reader.checkpoints(after=None, limit=10) == []
    assert await everything(reader) == []
    assert [e async for e in reader.export(start=0, end=5)] == []
    assert await reader.nodes([(0, 0), (1, 0)]) == {}


async def test_entries_read_back_in_order_once_sequenced(ledger: Ledger) -> None:
    await populate(ledger, 5)
    assert await everything(ledger.reader) == []  # appended, not yet in the tree
    await ledger.sequencer().run_once()
    entries = await everything(ledger.reader)
    assert [e.leaf_index for e in entries] == list(range(5))
    assert [e.body for e in entries] == ledger.bodies  # verbatim, in append order
    assert [e.leaf_hash for e in entries] == [leaf_hash(b.encode()) for b in ledger.bodies]
    assert await ledger.reader.tree_size() == 5


async def test_entries_filter_and_page_by_leaf_index(ledger: Ledger) -> None:
    await populate(ledger, 20)
    await ledger.sequencer().run_once()
    reader = ledger.reader

    async def indices(
        filters: EntryFilter, after: int | None = None, limit: int = 100
    ) -> list[int]:
        return [e.leaf_index for e in await reader.entries(filters, after=after, limit=limit)]

    # grant(n): agent agt_{n % 3}, decision "issued" every fourth, created at NOW + n.
    assert await indices(EntryFilter(agent_id="agt_1")) == [n for n in range(20) if n % 3 == 1]
    assert await indices(EntryFilter(decision="issued")) == [0, 4, 8, 12, 16]
    assert await indices(EntryFilter(decision="issued", agent_id="agt_0")) == [0, 12]
    assert await indices(EntryFilter(kind="grant")) == list(range(20))
    assert await indices(EntryFilter(kind="token_revoked")) == []
    assert await indices(EntryFilter(since=NOW + 5, until=NOW + 8)) == [5, 6, 7]
    assert await indices(EntryFilter(), after=16) == [17, 18, 19]
    assert await indices(EntryFilter(), after=2, limit=3) == [3, 4, 5]
    assert await indices(EntryFilter(agent_id="agt_2"), after=5, limit=2) == [8, 11]


async def test_the_export_pages_through_a_range_in_order(ledger: Ledger) -> None:
    await populate(ledger, 12)
    await ledger.sequencer().run_once()
    reader = ledger.reader
    every = await everything(reader)
    for start, end, batch in ((0, 12, 5), (3, 11, 2), (0, 12, 12), (4, 5, 1), (7, 7, 3)):
        exported = [e async for e in reader.export(start=start, end=end, batch=batch)]
        assert exported == every[start:end]
    # Past the tree: the export ends with the last sequenced leaf.
    assert [e async for e in reader.export(start=10, end=50, batch=4)] == every[10:]


async def test_checkpoints_are_stored_and_read_by_tree_size(ledger: Ledger) -> None:
    await populate(ledger, 17)
    written = []
    sequencer = ledger.sequencer(batch=5)
    while (checkpoint := await sequencer.run_once()) is not None:
        written.append(checkpoint)  # run_once sequences the whole backlog: one loop
    reader = ledger.reader
    stored = await reader.checkpoints(after=None, limit=100)
    assert [c.tree_size for c in stored] == [5, 10, 15, 17]  # one per round of 5
    assert stored[-1] == written[-1]
    assert await reader.latest_checkpoint() == stored[-1]
    assert stored[-1].kid == signed_kid(stored[-1].signed) == "ledger-test"
    assert stored[-1].root_hash == ledger.reference().root()
    assert stored[-1].created_at == NOW
    assert await reader.checkpoints(after=5, limit=2) == stored[1:3]
    assert await reader.checkpoints(after=None, limit=100, up_to=15) == stored[:3]
    assert await reader.checkpoints(after=5, limit=100, up_to=14) == stored[1:2]


async def test_proofs_from_the_stored_nodes(ledger: Ledger) -> None:
    await populate(ledger, 23)
    await ledger.sequencer(batch=4).run_once()
    reference = ledger.reference()
    reader = ledger.reader
    nodes = await reader.nodes([(0, 0), (0, 22), (0, 23), (1, 0), (4, 0), (4, 1)])
    assert nodes[(0, 0)] == leaf_hash(ledger.bodies[0].encode())
    assert nodes[(0, 22)] == leaf_hash(ledger.bodies[22].encode())
    assert (0, 23) not in nodes and (4, 1) not in nodes  # not in the tree: absent
    assert (1, 0) in nodes and (4, 0) in nodes
    for size in (1, 2, 9, 16, 23):
        assert await proofs.root_at(reader, size) == reference.root(size)
        for index in {0, size // 2, size - 1}:
            proof = await proofs.inclusion_proof(reader, index, size)
            verify_inclusion(proof.leaf_hash, index, size, proof.path, reference.root(size))
        for first in {1, size // 2 or 1, size}:
            consistency = await proofs.consistency_proof(reader, first, size)
            verify_consistency(
                first, size, reference.root(first), reference.root(size), consistency.path
            )
    with pytest.raises(proofs.NoSuchTreeSize):
        await proofs.inclusion_proof(reader, 0, 24)


async def test_the_ledger_keys_are_every_ledger_key_and_only_those(ledger: Ledger) -> None:
    await ledger.add_key("kid-ledger-1", "ledger")
    await ledger.add_key("kid-token-1", "token")
    await ledger.add_key("kid-ledger-2", "ledger")
    keys = [orjson.loads(text)["kid"] for text in await ledger.reader.ledger_keys()]
    assert sorted(keys) == ["kid-ledger-1", "kid-ledger-2"]


# --- the sequencer's rounds ----------------------------------------------------------------
async def test_a_round_reads_the_unsequenced_entries_above_the_floor(ledger: Ledger) -> None:
    await populate(ledger, 6)
    async with ledger.rounds.round() as sequencing:
        assert sequencing is not None
        assert await sequencing.tree_size() == 0
        assert await sequencing.floor(NOW + 10_000) is None  # nothing sequenced yet
        pending = await sequencing.unsequenced(None, 100)
        assert [p.body for p in pending] == ledger.bodies
        ids = [p.entry_id for p in pending]
        assert ids == sorted(ids)
        assert await sequencing.unsequenced(None, 2) == pending[:2]
        assert await sequencing.unsequenced(ids[2], 100) == pending[3:]
    await ledger.sequencer(batch=4).run_once()
    async with ledger.rounds.round() as sequencing:
        assert sequencing is not None
        assert await sequencing.tree_size() == 6
        assert await sequencing.unsequenced(None, 100) == []
        # Every backend: a checkpoint signed by the horizon puts the floor at its last leaf.
        assert await sequencing.floor(NOW) == ids[-1]


async def test_a_round_that_fails_writes_nothing(ledger: Ledger) -> None:
    await populate(ledger, 3)

    class Failed(Exception):
        pass

    async def fails_after_writing() -> None:
        async with ledger.rounds.round() as sequencing:
            assert sequencing is not None
            pending = await sequencing.unsequenced(None, 100)
            leaves = [
                Leaf(i, p.entry_id, leaf_hash(p.body.encode())) for i, p in enumerate(pending)
            ]
            head = Checkpoint(3, ledger.reference().root(), NOW, "ledger-test", "signed")
            await sequencing.write(leaves, [], head)
            raise Failed

    with pytest.raises(Failed):
        await fails_after_writing()
    assert await ledger.reader.tree_size() == 0
    assert await ledger.reader.latest_checkpoint() is None
    # And the next round sequences them as if nothing had happened.
    checkpoint = await ledger.sequencer().run_once()
    assert checkpoint is not None and checkpoint.tree_size == 3
    assert checkpoint.root_hash == ledger.reference().root()


async def test_one_round_at_a_time(ledger: Ledger, backend: str) -> None:
    """While a round is open, another gets none (PostgreSQL, memory) or waits for it to
    end (SQLite, whose writers queue): never two rounds at once."""
    entered = asyncio.Event()

    async def second() -> bool:
        async with ledger.rounds.round() as sequencing:
            entered.set()
            return sequencing is not None

    async with ledger.rounds.round() as first:
        assert first is not None
        task = asyncio.create_task(second())
        await asyncio.sleep(0.2)
        if backend == "embedded":
            assert not entered.is_set()
        else:
            assert task.done() and task.result() is False
    assert await asyncio.wait_for(task, 5) is (backend == "embedded")


async def test_concurrent_sequencers_give_each_entry_one_leaf(ledger: Ledger) -> None:
    """Instances sequencing at once: every entry gets exactly one leaf, in one tree."""
    await populate(ledger, 40)
    sequencers = [ledger.sequencer(batch=6) for _ in range(SEQUENCERS)]

    async def rounds(sequencer: Sequencer) -> None:
        for _ in range(3):
            await sequencer.run_once()
            await asyncio.sleep(0)

    await asyncio.gather(*(rounds(s) for s in sequencers))
    await sequencers[0].run_once()  # whatever a skipped round left
    entries = await everything(ledger.reader)
    assert [e.leaf_index for e in entries] == list(range(40))
    assert [e.body for e in entries] == ledger.bodies  # appended one after the other
    sizes = [c.tree_size for c in await ledger.reader.checkpoints(after=None, limit=100)]
    assert sizes == sorted(set(sizes)) and sizes[-1] == 40
    # The tree is the entries in their order, and every checkpoint signs a prefix of it.
    tree = MemoryTree()
    for entry in entries:
        tree.append(entry.body.encode())
    for checkpoint in await ledger.reader.checkpoints(after=None, limit=100):
        assert checkpoint.root_hash == tree.root(checkpoint.tree_size)
