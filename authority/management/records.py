"""What every registry flow shares: path id checks, JSON comparisons, and the write loop.

A registry flow reads a row through its port (``authority.storage.registry``), applies its
rules, and asks the port to replace the row only if it is still the one read. When a
concurrent writer changed it first, the port answers ``STALE`` and the flow reads and
decides again (``until_written``): the same outcome as waiting for a row lock, with every
rule in the flow and none in the storage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from authority.errors import Conflict
from authority.secrets import valid_id
from authority.storage.json_columns import dump_json
from authority.storage.registry import Stale, Written

__all__ = ["ATTEMPTS", "same_json", "until_written", "valid_id"]

R = TypeVar("R")

#: Reads and decisions one write may take before giving up: each failed attempt means
#: another writer's change of the same object committed, so this many only under a
#: crowd of concurrent writers of one object.
ATTEMPTS: Final = 100
BUSY: Final = "The object is being changed by other requests; try again."


def same_json(first: Any, second: Any) -> bool:
    """Whether two JSON documents are the same document (as their columns would store)."""
    return dump_json(first) == dump_json(second)


async def until_written(attempt: Callable[[], Awaitable[Written[R] | Stale]]) -> Written[R]:
    """Run ``attempt`` (read, decide, replace) until the row it read was still current."""
    for _ in range(ATTEMPTS):
        result = await attempt()
        if not isinstance(result, Stale):
            return result
    raise Conflict(BUSY)
