"""The gauges of an instance's state (``authority.metrics``), refreshed by each worker
every ``metrics_sample_interval`` and at each scrape it answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authority.context import Services


def sample(services: Services) -> None:
    measured = services.metrics
    for name, usage in services.pools():
        measured.pool_checked_out.labels(name).set(usage.checked_out)
        measured.pool_size.labels(name).set(usage.size)
    if services.sequencer is not None and services.sequencer.sequenced_at is not None:
        measured.sequenced.set(services.sequencer.sequenced_at)
    measured.feed_streams.set(services.open_items.server_streams.total)
