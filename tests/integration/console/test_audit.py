"""The auditor's console: the ledger by filter, an entry's proof checked, checkpoints, charts."""

from __future__ import annotations

import re

from authority.console import audit

from .conftest import Console


async def _ledger_with_decisions(console: Console) -> None:
    world = console.world
    assert (await world.exchange()).status_code == 200
    denied = await world.exchange(resource="other/repo")
    assert denied.status_code == 400, denied.text
    assert world.services.sequencer is not None
    await world.services.sequencer.run_once()


def _leaves(page_html: str) -> list[int]:
    return [int(n) for n in re.findall(r'href="/console/ledger/(\d+)"', page_html)]


async def test_an_auditor_filters_the_ledger(console: Console) -> None:
    await _ledger_with_decisions(console)
    auditor = await console.person("auditor")
    everything = await auditor.open("/console/ledger")
    assert everything.status_code == 200
    grants = await auditor.open("/console/ledger?kind=grant")
    denied = await auditor.open("/console/ledger?kind=grant&decision=denied")
    assert 0 < len(_leaves(denied.text)) < len(_leaves(grants.text)) < len(_leaves(everything.text))
    assert "denied" in denied.text
    assert "<td>issued</td>" not in denied.text
    by_agent = await auditor.open(f"/console/ledger?agent={console.world.agent_id}")
    assert len(_leaves(by_agent.text)) >= len(_leaves(grants.text))
    reason = re.search(r"<td>denied</td>\s*<td>([a-z_.:-]+)</td>", denied.text)
    assert reason is not None
    by_reason = await auditor.open(f"/console/ledger?reason={reason.group(1)}")
    assert _leaves(by_reason.text) == _leaves(denied.text)
    nothing = await auditor.open("/console/ledger?reason=no_such_reason")
    assert _leaves(nothing.text) == []
    assert (await auditor.open("/console/ledger?since=2000-01-01T00:00")).status_code == 200
    assert (await auditor.open("/console/ledger?until=2000-01-01T00:00")).status_code == 200
    assert _leaves((await auditor.open("/console/ledger?until=2000-01-01T00:00")).text) == []


async def test_bad_filters_are_refused_without_an_echo(console: Console) -> None:
    auditor = await console.person("auditor")
    for query in ("kind=MARKER9x", "decision=MARKER9x", "since=MARKER9x", "cursor=MARKER9x"):
        response = await auditor.open(f"/console/ledger?{query}")
        assert response.status_code == 400, query
        assert "MARKER9x" not in response.text


async def test_an_entry_shows_its_inclusion_proof_checked(console: Console) -> None:
    await _ledger_with_decisions(console)
    auditor = await console.person("auditor")
    listing = await auditor.open("/console/ledger?kind=grant")
    leaf = _leaves(listing.text)[0]
    entry = await auditor.open(f"/console/ledger/{leaf}")
    assert entry.status_code == 200
    assert "Verified: this entry is in the tree the newest checkpoint signs." in entry.text
    assert "Audit path" in entry.text
    assert (await auditor.open("/console/ledger/999999")).status_code == 404
    assert (await auditor.open("/console/ledger/x")).status_code == 404


async def test_a_body_that_is_not_the_leaf_does_not_verify(console: Console) -> None:
    await _ledger_with_decisions(console)
    services = console.world.services
    row = await audit.entry(services, 0)
    assert row is not None
    assert (await audit.check_inclusion(services, 0, row.raw)).verified
    forged = row.raw.replace('"kind"', '"kind" ', 1)
    assert not (await audit.check_inclusion(services, 0, forged)).verified
    size = await services.ledger_reader.tree_size()
    late = await audit.check_inclusion(services, size, row.raw)
    assert not late.verified
    assert "Not in a signed checkpoint yet" in late.message


async def test_checkpoints_and_the_offline_commands(console: Console) -> None:
    await _ledger_with_decisions(console)
    auditor = await console.person("auditor")
    response = await auditor.open("/console/checkpoints")
    assert response.status_code == 200
    assert "authority ledger verify" in response.text
    assert "--export http://127.0.0.1:8400/v1/ledger/export" in response.text


async def test_charts_are_server_rendered_svg(console: Console) -> None:
    await _ledger_with_decisions(console)
    auditor = await console.person("auditor")
    response = await auditor.open("/console/charts")
    assert response.status_code == 200
    assert response.text.count("<svg") == 5
    assert "<rect" in response.text
    assert "Denials by reason" in response.text


async def test_the_ledger_pages_are_for_auditors_and_admins(console: Console) -> None:
    owner = await console.owner()
    for path in ("/console/ledger", "/console/checkpoints", "/console/charts", "/console/ledger/0"):
        assert (await owner.open(path)).status_code == 403
    admin = await console.person("admin")
    assert (await admin.open("/console/ledger")).status_code == 200
    auditor = await console.person("auditor")
    assert (await auditor.open("/console/owner/approvals")).status_code == 403
