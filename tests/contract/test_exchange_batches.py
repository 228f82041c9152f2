"""The exchange port's spends under group commit (``storage.sql.group_commit``), on SQL.

Concurrent spends of one worker share a transaction; what each caller is told stays
what it would have been told alone: its own call spent or refused, caps exact, one
item's error its own, a lost commit never a success, a lock held on one owner's rows
no stall for the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from authority.settings import Settings
from authority.storage.exchange import GrantWrite, SpendOutcome
from authority.storage.replay import MOST, single_use
from authority.storage.sql import exchange_batch
from authority.storage.sql.exchange import SqlExchangeStore
from authority.storage.sql.group_commit import CommitUnknown
from tests.isolation import asyncpg_dsn

from .exchange_support import Ports, grant, open_ports, refuse_as, spend_of, use
from .support import NOW, Seeded, seed


@pytest.fixture
async def ports(sql_settings: Settings | None) -> AsyncIterator[Ports]:
    if sql_settings is None:
        pytest.skip("group commit is the SQL implementation's")
    # On both SQL backends, whatever the default for each.
    forced = sql_settings.model_copy(update={"exchange_group_commit": True})
    async for opened in open_ports(forced):
        yield opened


def batched(ports: Ports) -> SqlExchangeStore:
    store = ports.exchange
    assert isinstance(store, SqlExchangeStore)
    return store


async def spend(ports: Ports, s: Seeded, name: str, write: GrantWrite | None = None) -> Any:
    return await ports.exchange.spend(
        dataclasses.replace(spend_of(s), delegation_id=s.delegation_id, agent_id=s.agent_id),
        write or grant(s, "issued"),
        [use(name)],
        refuse_as(s, "refused"),
    )


async def second_owner(ports: Ports, s: Seeded) -> Seeded:
    """Another owner with its agent and delegation, on the same tool."""
    other = dataclasses.replace(s, owner_id="own_2", agent_id="agt_2", delegation_id="dlg_2")
    stamps = {"created_at": NOW - 100, "updated_at": NOW - 100}
    insert = ports.store.insert
    await insert("owners", {"id": "own_2", "name": "other", "status": "active", **stamps})
    agent = await ports.row("agents", s.agent_id)
    await insert("agents", {**agent, "id": "agt_2", "owner_id": "own_2"})
    delegation = await ports.row("delegations", s.delegation_id)
    await insert(
        "delegations", {**delegation, "id": "dlg_2", "owner_id": "own_2", "agent_id": "agt_2"}
    )
    return other


async def test_concurrent_spends_on_one_delegation_share_batches_and_each_spends_a_call(
    ports: Ports,
) -> None:
    s = await seed(ports.store)
    await ports.update("delegations", s.delegation_id, max_calls=5)
    outcomes = await asyncio.gather(*(spend(ports, s, f"u{i}") for i in range(20)))
    assert [o.denial for o in outcomes].count(None) == 5
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 5
    store = batched(ports)
    assert store.spends.batches >= 1 and store.spends.items > store.spends.batches
    grants = [r for r in await ports.rows("grants") if r["id"] != s.grant_id]
    assert len(grants) == 20 and len(await ports.entries()) == 20


async def test_one_spends_error_in_a_concurrent_batch_fails_no_other(ports: Ports) -> None:
    s = await seed(ports.store)
    good = grant(s, "issued")
    clash = dataclasses.replace(good, grant=dataclasses.replace(good.grant, id=s.grant_id))
    outcomes = await asyncio.gather(
        spend(ports, s, "a"),
        spend(ports, s, "bad", clash),  # its grant row's id is taken: it cannot be written
        spend(ports, s, "c"),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], Exception)
    assert outcomes[0] == outcomes[2] == SpendOutcome(claimed=(True,))
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 2
    # Nothing of the failed spend stayed: not its call, not its use.
    assert {r["key"] for r in await ports.rows("used_jtis")} == {use("a").key, use("c").key}


async def test_a_batch_whose_commit_is_lost_tells_no_waiter_it_was_spent(
    ports: Ports, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await seed(ports.store)
    sql: Any = batched(ports)._sql
    if backend == "postgres":  # a batch is one statement: lost once it has run
        real_fetch = sql.fetch

        async def lost_after(statement: Any, params: Any) -> Any:
            await real_fetch(statement, params)
            raise ConnectionError("the connection was lost before the answer")

        monkeypatch.setattr(sql, "fetch", lost_after)
    else:
        real = sql.transaction

        @asynccontextmanager
        async def lost_at_commit() -> AsyncIterator[Any]:
            async with real() as tx:
                yield tx
                raise ConnectionError("the connection was lost at COMMIT")

        monkeypatch.setattr(sql, "transaction", lost_at_commit)
    outcomes = await asyncio.gather(
        *(spend(ports, s, f"u{i}") for i in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert batched(ports).spends.batches == 1
    monkeypatch.undo()
    if backend != "postgres":  # rolled back; on PostgreSQL it committed, unknown to all
        assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 0


async def test_an_error_after_the_batch_committed_is_answered_as_lost_and_retried_never(
    ports: Ports, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrying the items of a committed batch would write each twice (a unique key
    violated: a 500) or refuse, with a second ledger entry, a call already granted."""
    s = await seed(ports.store)
    sql: Any = batched(ports)._sql
    if backend == "postgres":  # the statement committed, then its answer was misread
        real_outcomes = exchange_batch.outcomes

        def misread(rows: Any, items: Any) -> Any:
            real_outcomes(rows, items)
            raise KeyError("claimed_2")

        monkeypatch.setattr(exchange_batch, "outcomes", misread)
    else:
        real = sql.transaction

        @asynccontextmanager
        async def fails_after_commit() -> AsyncIterator[Any]:
            async with real() as tx:
                yield tx
            raise KeyError("after the commit")

        monkeypatch.setattr(sql, "transaction", fails_after_commit)
    outcomes = await asyncio.gather(
        *(spend(ports, s, f"u{i}") for i in range(5)), return_exceptions=True
    )
    monkeypatch.undo()
    assert all(isinstance(o, CommitUnknown) for o in outcomes)  # 503 to every waiter
    assert batched(ports).spends.batches == 1
    # Written once, by the batch: no item was written again, alone.
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 5
    decisions = [r["decision"] for r in await ports.rows("grants") if r["id"] != s.grant_id]
    assert decisions == ["issued"] * 5 and len(await ports.entries()) == 5
    assert len(await ports.rows("used_jtis")) == 5


async def test_a_spend_of_more_single_uses_than_recorded_is_refused_whole(
    ports: Ports,
) -> None:
    """The batch's statement has room for ``MOST`` uses: one more is never dropped."""
    s = await seed(ports.store)
    many = [
        single_use("attestation", s.agent_id, f"m{j}", expires_at=NOW + 60) for j in range(MOST + 1)
    ]

    async def too_many() -> Any:
        return await ports.exchange.spend(spend_of(s), grant(s, "issued"), many, refuse_as(s, "x"))

    outcomes = await asyncio.gather(
        spend(ports, s, "a"), too_many(), spend(ports, s, "c"), return_exceptions=True
    )
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[0] == outcomes[2] == SpendOutcome(claimed=(True,))
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 2
    assert {r["key"] for r in await ports.rows("used_jtis")} == {use("a").key, use("c").key}
    item = exchange_batch.Item({}, many, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most"):  # nor in a batch, if one got there
        exchange_batch.parameters([item], (), "50ms")


@pytest.mark.commits
async def test_a_lock_on_one_owners_rows_stalls_no_other_owners_spends(
    ports: Ports, backend: str, sql_settings: Settings | None
) -> None:
    if backend != "postgres" or sql_settings is None:
        pytest.skip("SQLite serialises writers: no row locks to wait on")
    s = await seed(ports.store)
    other = await second_owner(ports, s)
    assert sql_settings.database_url is not None
    blocker = await asyncpg.connect(asyncpg_dsn(sql_settings.database_url))
    try:
        held = blocker.transaction()
        await held.start()
        # As a kill switch of own_2 would, while it revokes that owner's delegations.
        await blocker.execute("SELECT 1 FROM owners WHERE id = 'own_2' FOR UPDATE")
        first = [asyncio.create_task(spend(ports, s, f"a{i}")) for i in range(6)]
        waiting = asyncio.create_task(spend(ports, other, "held"))
        rest = [asyncio.create_task(spend(ports, s, f"b{i}")) for i in range(6)]
        # The batch holding own_2's spend gives up its lock wait at the bound; the
        # other owner's spends are then written, while own_2's row is still locked.
        outcomes = await asyncio.gather(*first, *rest)
        assert all(o.denial is None for o in outcomes)
        assert not waiting.done()
        await held.rollback()
        assert (await waiting).denial is None
    finally:
        await blocker.close()
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 12
    assert (await ports.row("delegations", other.delegation_id))["calls_used"] == 1


async def test_a_use_asked_for_twice_in_one_batch_is_spent_once(ports: Ports) -> None:
    s = await seed(ports.store)
    seen: list[Any] = []

    async def twice(name: str) -> Any:
        return await ports.exchange.spend(
            spend_of(s), grant(s, "issued"), [use(name)], refuse_as(s, "replayed", seen)
        )

    outcomes = await asyncio.gather(twice("same"), twice("other"), twice("same"))
    assert [o.claimed for o in outcomes] == [(True,), (True,), (False,)]
    assert [o.denial is None for o in outcomes] == [True, True, False]
    assert [n.claimed for n in seen] == [(False,)]
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 2
    decisions = sorted(r["decision"] for r in await ports.rows("grants") if r["id"] != s.grant_id)
    assert decisions == ["denied", "issued", "issued"]
    assert len(await ports.entries()) == 3


async def test_a_refused_spend_in_a_batch_is_recorded_and_the_others_spent(
    ports: Ports,
) -> None:
    s = await seed(ports.store)
    other = await second_owner(ports, s)
    await ports.update("delegations", other.delegation_id, status="revoked")
    seen: list[Any] = []

    async def on(seeded: Seeded, name: str) -> Any:
        return await ports.exchange.spend(
            dataclasses.replace(
                spend_of(seeded), delegation_id=seeded.delegation_id, agent_id=seeded.agent_id
            ),
            grant(seeded, "issued"),
            [use(name)],
            refuse_as(seeded, "revoked", seen),
        )

    outcomes = await asyncio.gather(on(s, "a"), on(other, "b"), on(s, "c"))
    assert [o.denial is None for o in outcomes] == [True, False, True]
    assert len(seen) == 1 and seen[0].claimed == (True,)
    assert seen[0].state is not None and seen[0].state.status == "revoked"
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 2
    assert (await ports.row("delegations", other.delegation_id))["calls_used"] == 0
    assert len(await ports.entries()) == 3


async def test_group_commit_is_the_default_on_both_sql_backends(
    sql_settings: Settings | None,
) -> None:
    if sql_settings is None:
        pytest.skip("group commit is the SQL implementation's")
    assert "exchange_group_commit" not in sql_settings.model_fields_set
    async for opened in open_ports(sql_settings):
        s = await seed(opened.store)
        outcomes = await asyncio.gather(*(spend(opened, s, f"d{i}") for i in range(4)))
        assert all(o.denial is None for o in outcomes)
        store = batched(opened)
        assert store.spends.batches == 1 and store.spends.items == 4


# --- a change committed while the batch's statement waits for its row locks ---------------
async def _waiting_for_a_lock(blocker: asyncpg.Connection) -> None:
    """Until a statement of this database waits for a lock the blocker holds."""
    for _ in range(1000):
        # In a transaction the activity view is read once; its snapshot is let go here.
        await blocker.execute("SELECT pg_stat_clear_snapshot()")
        if await blocker.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database() AND pid <> pg_backend_pid()"
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no statement waited for the lock")


async def _batched_while_held(
    sql_settings: Settings | None, change: str, nows: list[int], bound: float = 60.0
) -> tuple[list[Any], int, int]:
    """Spends (one per ``now``) batched while ``change`` holds its rows, then committed
    under the statement: what each was told, the calls used, and how many items were
    written alone (a retry)."""
    assert sql_settings is not None and sql_settings.database_url is not None
    # By default a bound far past the wait: the batch's own statement sees the change,
    # not a retry.
    forced = sql_settings.model_copy(
        update={"exchange_group_commit": True, "exchange_batch_lock_timeout": bound}
    )
    blocker = await asyncpg.connect(asyncpg_dsn(sql_settings.database_url))
    alone: list[Any] = []
    try:
        async for ports in open_ports(forced):
            s = await seed(ports.store)
            queue: Any = batched(ports).spends
            real_one = queue._one

            async def counted(item: Any, real_one: Any = real_one) -> Any:
                alone.append(item)
                return await real_one(item)

            queue._one = counted
            held = blocker.transaction()
            await held.start()
            await blocker.execute(change)
            tasks = [
                asyncio.create_task(
                    ports.exchange.spend(
                        spend_of(s, now), grant(s, "issued"), [use(f"m{i}")], refuse_as(s, "x")
                    )
                )
                for i, now in enumerate(nows)
            ]
            await _waiting_for_a_lock(blocker)
            await held.commit()
            outcomes = await asyncio.gather(*tasks)
            assert queue.batches == 1 and queue.items == len(nows)
            calls_used = (await ports.row("delegations", s.delegation_id))["calls_used"]
    finally:
        await blocker.close()
    return outcomes, calls_used, len(alone)


#: Each moves the delegation's expiry to ``NOW``: past for a spend at ``NOW`` or later.
_EXPIRED = "UPDATE delegations SET expires_at = 1700000000"
assert str(NOW) in _EXPIRED


@pytest.mark.commits
@pytest.mark.parametrize(
    "change",
    [
        "UPDATE delegations SET status = 'revoked'",
        "UPDATE agents SET status = 'quarantined'",
        "UPDATE owners SET status = 'suspended'",
        "UPDATE tools SET status = 'retired'",
        "UPDATE delegations SET max_calls = calls_used",
        _EXPIRED,
    ],
)
async def test_a_change_committed_under_the_batch_refuses_its_spends(
    backend: str, sql_settings: Settings | None, change: str
) -> None:
    """Committed after the statement began and before it had the rows: the statement
    reads the rows as changed, and spends nothing."""
    if backend != "postgres":
        pytest.skip("SQLite serialises writers: nothing commits under a batch")
    outcomes, calls_used, alone = await _batched_while_held(sql_settings, change, [NOW] * 4)
    assert all(o.denial is not None for o in outcomes) and alone == 0
    assert calls_used == 0


@pytest.mark.commits
async def test_an_expiry_moved_under_the_batch_is_checked_against_each_spends_own_time(
    backend: str, sql_settings: Settings | None
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite serialises writers: nothing commits under a batch")
    nows = [NOW - 5, NOW + 5, NOW - 1]
    outcomes, calls_used, alone = await _batched_while_held(sql_settings, _EXPIRED, nows)
    assert [o.denial is None for o in outcomes] == [True, False, True] and alone == 0
    assert calls_used == 2


@pytest.mark.commits
@pytest.mark.parametrize("table", ["grants", "delegations", "used_jtis"])
async def test_a_table_locked_under_the_batch_delays_its_spends_and_each_is_written_once(
    backend: str, sql_settings: Settings | None, table: str
) -> None:
    """A table lock stops the batch (its row lock bound does not apply to it) as it would
    stop each spend alone: once it is let go, every spend is written, each once."""
    if backend != "postgres":
        pytest.skip("SQLite serialises writers: nothing commits under a batch")
    lock = f"LOCK TABLE {table} IN EXCLUSIVE MODE"
    outcomes, calls_used, _ = await _batched_while_held(sql_settings, lock, [NOW] * 4, 0.05)
    assert all(isinstance(o, SpendOutcome) and o.denial is None for o in outcomes)
    assert calls_used == 4


async def test_a_use_taken_at_another_position_in_the_batch_is_a_replay(ports: Ports) -> None:
    """A key is one key wherever in its spend it is asked for (an attestation's use, a
    DPoP proof's): asked for by two spends of one batch, the first takes it."""
    s = await seed(ports.store)

    async def with_uses(*uses: Any) -> Any:
        return await ports.exchange.spend(spend_of(s), grant(s, "issued"), uses, refuse_as(s, "x"))

    dpop = [single_use("dpop", s.agent_id, name, expires_at=NOW + 60) for name in ("x", "y")]
    outcomes = await asyncio.gather(
        with_uses(use("k1")), with_uses(dpop[0], use("k1")), with_uses(dpop[1], use("k2"))
    )
    assert [o.denial is None for o in outcomes] == [True, False, True]
    assert outcomes[1].claimed == (True, False)
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 2


async def test_spends_of_no_use_and_of_two_share_a_batch_and_its_cap(ports: Ports) -> None:
    s = await seed(ports.store)
    await ports.update("delegations", s.delegation_id, max_calls=3)
    two = [use("m2"), single_use("dpop", s.agent_id, "m3", expires_at=NOW + 60)]

    async def with_uses(uses: list[Any]) -> Any:
        return await ports.exchange.spend(spend_of(s), grant(s, "issued"), uses, refuse_as(s, "x"))

    outcomes = await asyncio.gather(
        with_uses([]), with_uses([use("m1")]), with_uses([]), with_uses(two), with_uses([])
    )
    assert [o.denial is None for o in outcomes] == [True, True, True, False, False]
    assert (await ports.row("delegations", s.delegation_id))["calls_used"] == 3
    assert batched(ports).spends.batches == 1 and batched(ports).spends.items == 5
    assert len(await ports.entries()) == 5
