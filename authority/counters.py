"""Open items per key with a cap, in this instance's memory: request bodies being read
and feed streams per client address, feed streams per resource server
(``authority.endpoints.limits``). A leaf, so ``Services`` holds them typed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class Counter:
    """Open items per key, with a cap; an empty key is forgotten (bounded memory)."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Open items over every key (a gauge of the metrics)."""
        return sum(self.open.values())

    def acquire(self, key: str, cap: int) -> Callable[[], None] | None:
        """A release callback, or None when ``key`` already holds ``cap`` items."""
        if self.open.get(key, 0) >= cap:
            return None
        self.open[key] = self.open.get(key, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self.open[key] - 1
            if left:
                self.open[key] = left
            else:
                del self.open[key]

        return release


@dataclass
class OpenItems:
    """The instance's counters of open items."""

    uploads: Counter = field(default_factory=Counter)
    client_streams: Counter = field(default_factory=Counter)
    server_streams: Counter = field(default_factory=Counter)
