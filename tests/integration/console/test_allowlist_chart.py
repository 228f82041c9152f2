"""The chart of calls inside versus outside the delegations' allowlists: what it counts."""

from __future__ import annotations

from authority.console import charts
from authority.policy.reasons import Reason

from .conftest import Console

NOW = 1_800_000_000


def test_issued_is_inside_and_only_allowlist_denials_are_outside() -> None:
    grants: list[tuple[int, str, str | None]] = [
        (NOW - 30, "issued", None),
        (NOW - 40, "denied", Reason.TOOL_NOT_DELEGATED.value),
        (NOW - 50, "denied", Reason.RESOURCE_NOT_DELEGATED.value),
        (NOW - 70, "denied", Reason.ACTION_NOT_DELEGATED.value),
        (NOW - 80, "denied", Reason.RATE_LIMITED.value),
        (NOW - 90, "denied", Reason.DELEGATION_REVOKED.value),
        (NOW - 95, "pending", Reason.APPROVAL_REQUIRED.value),
        (NOW - 99, "denied", None),
    ]
    assert charts.allowlist_calls(grants) == [
        (NOW - 30, "issued"),
        (NOW - 40, "denied"),
        (NOW - 50, "denied"),
        (NOW - 70, "denied"),
    ]
    chart = charts.inside_versus_outside(grants, NOW)
    per_series = {
        series: sum(b.value for b in chart.bars if b.series == series)
        for series in ("issued", "denied")
    }
    assert per_series == {"issued": 1, "denied": 3}
    # Per minute over the other charts' window: the last minute holds 1 + 2, the one before 1.
    assert sorted(b.value for b in chart.bars) == [1, 1, 2]
    assert chart.maximum == 3
    assert chart.note == "1 issued inside, 3 denied outside the allowlist in the last hour"
    # Outside the hour counts nothing.
    old = charts.inside_versus_outside([(NOW - 3600, "issued", None)], NOW)
    assert old.empty
    assert not charts.inside_versus_outside([(NOW, "issued", None)], NOW).empty


async def test_the_chart_is_on_the_auditor_page(console: Console) -> None:
    world = console.world
    assert (await world.exchange()).status_code == 200
    assert (await world.exchange(resource="other/repo")).status_code == 400
    assert world.services.sequencer is not None
    await world.services.sequencer.run_once()
    page = (await (await console.person("auditor")).open("/console/charts")).text
    assert "Calls inside versus outside allowlists" in page
    assert "1 issued inside, 1 denied outside the allowlist in the last hour" in page
