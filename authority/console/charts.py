"""Simple charts for the auditor, as geometry the templates draw as SVG (no script).

Decisions per minute, calls inside versus outside the delegations' allowlists (issued
grants against denials for a tool, resource or action not delegated) and denials by
reason come from the ledger's grants of the last hour (at most ``MAX_GRANTS`` of them);
time to contain from this instance's own histograms (``authority.metrics``: the kill
switch's and automatic containment's), so it covers what this process saw since it
started. Labels are plain text, escaped by the
template like every other value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import orjson
from prometheus_client import Histogram

from authority.context import Services
from authority.policy.reasons import Reason
from authority.storage.ledger_reader import EntryFilter

MAX_GRANTS: Final = 10_000
MINUTES: Final = 60
WIDTH: Final = 420
HEIGHT: Final = 220
_PAD: Final = 30
#: Where horizontal bars start: their labels are to the left.
LABELS: Final = 150


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    series: str = ""


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: list[Bar]
    axis: list[tuple[float, str]]  # (x, label) ticks under the bars
    maximum: int
    note: str
    legend: str = "blue issued · red denied"
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return self.maximum == 0


def _scale(value: int, maximum: int) -> float:
    return 0.0 if maximum == 0 else (HEIGHT - 2 * _PAD) * value / maximum


def per_minute(times: Iterable[tuple[int, str]], now: int) -> Chart:
    """Issued and denied grants in each of the last ``MINUTES`` minutes, stacked."""
    start = now - MINUTES * 60
    issued, denied = [0] * MINUTES, [0] * MINUTES
    for time, decision in times:
        slot = (time - start - 1) // 60  # the window is (now - 1 h, now]: this second counts
        if 0 <= slot < MINUTES:
            (denied if decision == "denied" else issued)[slot] += 1
    maximum = max((i + d for i, d in zip(issued, denied, strict=True)), default=0)
    step = (WIDTH - 2 * _PAD) / MINUTES
    bars = []
    for slot in range(MINUTES):
        x = _PAD + slot * step
        low = _scale(issued[slot], maximum)
        high = _scale(denied[slot], maximum)
        base = HEIGHT - _PAD
        minute = f"{MINUTES - slot} min ago"
        if issued[slot]:
            bars.append(Bar(x, base - low, step * 0.8, low, minute, issued[slot], "issued"))
        if denied[slot]:
            bars.append(Bar(x, base - low - high, step * 0.8, high, minute, denied[slot], "denied"))
    axis = [(_PAD + s * step, f"-{MINUTES - s}m") for s in range(0, MINUTES, 10)]
    note = f"{sum(issued)} issued, {sum(denied)} denied in the last hour"
    return Chart("Decisions per minute", bars, axis, maximum, note)


#: Denials that mean the call asked for was outside the delegation's allowlist.
OUTSIDE_ALLOWLIST: Final = frozenset(
    {Reason.TOOL_NOT_DELEGATED, Reason.RESOURCE_NOT_DELEGATED, Reason.ACTION_NOT_DELEGATED}
)


def allowlist_calls(
    grants: Iterable[tuple[int, str, str | None]],
) -> list[tuple[int, str]]:
    """Issued grants (inside) and allowlist denials (outside), as (time, series); every
    other decision (another reason's denial, a pending approval) is neither."""
    found = []
    for time, decision, reason in grants:
        if decision == "issued":
            found.append((time, "issued"))
        elif decision == "denied" and reason in OUTSIDE_ALLOWLIST:
            found.append((time, "denied"))
    return found


def inside_versus_outside(grants: Iterable[tuple[int, str, str | None]], now: int) -> Chart:
    """Per minute: calls inside the delegation's allowlists (issued) and outside them."""
    chart = per_minute(allowlist_calls(grants), now)
    inside = sum(b.value for b in chart.bars if b.series == "issued")
    outside = sum(b.value for b in chart.bars if b.series == "denied")
    return Chart(
        "Calls inside versus outside allowlists",
        chart.bars,
        chart.axis,
        chart.maximum,
        f"{inside} issued inside, {outside} denied outside the allowlist in the last hour",
        legend="blue inside · red outside",
    )


def by_label(
    title: str, counts: Counter[str], note: str, *, limit: int = 10, in_order: bool = False
) -> Chart:
    """Horizontal bars: largest first, or in the order counted (a histogram's buckets)."""
    top = list(counts.items())[:limit] if in_order else counts.most_common(limit)
    maximum = max((value for _, value in top), default=0)
    row = (HEIGHT - 2 * _PAD) / max(len(top), 1)
    bars = []
    for i, (label, value) in enumerate(top):
        width = 0.0 if maximum == 0 else (WIDTH - LABELS - 2 * _PAD) * value / maximum
        bars.append(Bar(LABELS, _PAD + i * row, width, row * 0.75, label, value))
    return Chart(title, bars, [], maximum, note)


def buckets(histogram: Histogram) -> Counter[str]:
    """A histogram's observations per bucket (``<= 0.05 s``), from its cumulative counts."""
    counts: Counter[str] = Counter()
    previous = 0.0
    for family in histogram.collect():
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            le = sample.labels["le"]
            label = "slower" if le == "+Inf" else f"<= {float(le) * 1000:g} ms"
            counts[label] = int(sample.value - previous)
            previous = sample.value
    return +counts


async def grants_of_last_hour(services: Services) -> list[tuple[int, str, str | None]]:
    now = services.now()
    rows = await services.ledger_reader.entries(
        EntryFilter(kind="grant", since=now - MINUTES * 60), after=None, limit=MAX_GRANTS
    )
    found = []
    for row in rows:
        body = orjson.loads(row.body)
        found.append((int(body["time"]), str(body["decision"]), body.get("reason")))
    return found


async def all_charts(services: Services) -> list[Chart]:
    now = services.now()
    grants = await grants_of_last_hour(services)
    reasons = Counter(str(reason) for _, decision, reason in grants if decision == "denied")
    capped = len(grants) >= MAX_GRANTS
    suffix = f" (the first {MAX_GRANTS})" if capped else ""
    kill = buckets(services.metrics.kill_time_to_contain)
    automatic = buckets(services.metrics.time_to_contain)
    return [
        per_minute(((t, d) for t, d, _ in grants), now),
        inside_versus_outside(grants, now),
        by_label(
            "Denials by reason",
            reasons,
            f"{_count(sum(reasons.values()), 'denial')} in the last hour{suffix}",
        ),
        by_label(
            "Time to contain: kill switch",
            kill,
            _count(sum(kill.values()), "kill switch", "kill switches")
            + " seen by this instance since it started",
            in_order=True,
        ),
        by_label(
            "Time to contain: automatic quarantine",
            automatic,
            f"{_count(sum(automatic.values()), 'containment')} seen by this instance since "
            "it started",
            in_order=True,
        ),
    ]


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 denial``, ``2 denials``: a count with its noun."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
