"""The tool registry port's contract (``authority.storage.tools``), on every backend."""

from __future__ import annotations

import dataclasses

import pytest

from authority.ledger.entries import MalformedEntry
from authority.storage.registry import STALE, TAKEN, NewEvent, Written

from .registry_support import (
    MALFORMED,
    WRITERS,
    Registries,
    changed,
    concurrently,
    ids,
    registries,
    seed_server,
    tool,
)
from .support import NOW

__all__ = ["registries"]  # the fixture


@pytest.fixture
async def hosted(registries: Registries) -> Registries:
    await seed_server(registries)
    return registries


def _retirement(now: int = NOW + 5) -> tuple[tuple[str, int, int, dict[str, object]], NewEvent]:
    entry = changed("tool", "tool_1", "retired", changes={"status": "retired"}, tool="files.read")
    return entry, NewEvent(kind="tool", time=now, expires_at=now + 400, tool="files.read")


async def test_a_tool_is_created_with_its_entry_and_read_back(hosted: Registries) -> None:
    row = tool(approval_required=True, single_use=True, max_token_lifetime=30)
    created = await hosted.tools.create(row, [changed("tool", "tool_1", tool="files.read")])
    assert created == row  # the lists and flags come back as they were
    assert await hosted.tools.get("tool_1") == row
    assert await hosted.tools.get("tool_2") is None
    assert [e["tool"] for e in await hosted.store.ledger()] == ["files.read"]


async def test_pages_continue_after_the_last_row(hosted: Registries) -> None:
    for i in range(3):
        await hosted.tools.create(tool(f"tool_{i}", f"t.{i}", created_at=NOW), ())
    first = await hosted.tools.page(limit=1, after=None)
    assert ids(first.rows) == ["tool_0"] and first.last == (NOW, "tool_0")
    rest = await hosted.tools.page(limit=5, after=first.last)
    assert ids(rest.rows) == ["tool_1", "tool_2"] and rest.last is None


async def test_a_taken_name_is_refused_and_writes_nothing(hosted: Registries) -> None:
    await hosted.tools.create(tool(), ())
    entry = changed("tool", "tool_2", tool="files.read")
    assert await hosted.tools.create(tool("tool_2", "files.read"), [entry]) is TAKEN
    assert await hosted.tools.get("tool_2") is None
    assert await hosted.store.ledger() == []


async def test_one_of_many_concurrent_creators_of_a_name_wins(hosted: Registries) -> None:
    results = await concurrently(
        lambda i: hosted.tools.create(
            tool(f"tool_{i}", "files.read"), [changed("tool", f"tool_{i}", tool="files.read")]
        )
    )
    winners = [r for r in results if r is not TAKEN]
    assert len(winners) == 1
    assert ids((await hosted.tools.page(limit=100, after=None)).rows) == ids(winners)
    assert len(await hosted.store.ledger()) == 1


async def test_a_retirement_commits_with_its_entry_and_event(hosted: Registries) -> None:
    await hosted.tools.create(tool(), ())
    entry, event = _retirement()
    retired = tool(status="retired", updated_at=NOW + 5)
    written = await hosted.tools.replace(tool(), retired, entries=[entry], events=[event])
    assert isinstance(written, Written)
    assert written.row == retired
    assert [(e.kind, e.tool, e.time, e.expires_at) for e in written.events] == [
        ("tool", "files.read", NOW + 5, NOW + 405)
    ]
    assert await hosted.tools.get("tool_1") == retired
    assert [e["change"] for e in await hosted.store.ledger()] == ["retired"]
    events = await hosted.store.events()
    assert [(e["kind"], e["tool"], e["created_at"]) for e in events] == [
        ("tool", "files.read", NOW + 5)
    ]


async def test_a_failing_entry_writes_nothing(hosted: Registries) -> None:
    with pytest.raises(MalformedEntry):
        await hosted.tools.create(tool(), [MALFORMED])
    assert await hosted.tools.get("tool_1") is None
    await hosted.tools.create(tool(), ())
    _, event = _retirement()
    with pytest.raises(MalformedEntry):
        await hosted.tools.replace(
            tool(), tool(status="retired"), entries=[MALFORMED], events=[event]
        )
    assert await hosted.tools.get("tool_1") == tool()
    assert await hosted.store.ledger() == []
    assert await hosted.store.events() == []


async def test_one_of_many_concurrent_changes_of_a_read_wins(hosted: Registries) -> None:
    await hosted.tools.create(tool(), ())
    entry, event = _retirement()
    results = await concurrently(
        lambda i: hosted.tools.replace(
            tool(), tool(status="retired", updated_at=NOW + i), entries=[entry], events=[event]
        )
    )
    winners = [r for r in results if isinstance(r, Written)]
    assert len(winners) == 1
    assert results.count(STALE) == WRITERS - 1
    assert await hosted.tools.get("tool_1") == winners[0].row
    assert len(await hosted.store.ledger()) == 1
    assert len(await hosted.store.events()) == 1


async def test_a_stale_change_writes_nothing(hosted: Registries) -> None:
    await hosted.tools.create(tool(), ())
    changed_first = dataclasses.replace(tool(), actions=["read"], read_actions=["read"])
    assert isinstance(await hosted.tools.replace(tool(), changed_first), Written)
    entry, event = _retirement()
    stale = await hosted.tools.replace(
        tool(), tool(status="retired"), entries=[entry], events=[event]
    )
    assert stale is STALE
    assert await hosted.tools.get("tool_1") == changed_first
    assert await hosted.store.ledger() == []
    assert await hosted.store.events() == []
