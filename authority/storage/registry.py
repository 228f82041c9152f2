"""What the registry ports share: rows read, then replaced only if still as read.

The registries (``storage.owners``, ``agents``, ``api_keys``, ``resource_servers``,
``tools``) hold the objects an admin or an owner manages. A flow in
``authority.management`` reads a row, applies its rules to it, builds the row it wants and
the ledger entries (``authority.ledger.entries.Entry``) and revocation events
(``NewEvent``) that record the change, and hands all of it to one port method:

* ``create`` inserts the row and appends its entries in one transaction;
* ``replace(expected, new, ...)`` writes ``new`` only if the stored row still equals
  ``expected`` (what the flow read and decided on), with its entries and then its events,
  in one transaction. Otherwise nothing is written and the answer is ``STALE``: the flow
  reads the row again and decides again, as it would have after waiting for a lock.

A row whose unique name (or audience) another row holds, found before writing or lost to
a concurrent writer's commit (the unique constraint), is ``TAKEN``: nothing is written.
Visibility (an owner sees only its own objects) is a parameter of the reads, and an
object that is not visible reads exactly as one that does not exist: None.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

from authority.storage.events import Kind, RevocationEvent

R = TypeVar("R")


class Record(Protocol):
    """A registry's row: a frozen dataclass whose fields are named by the columns."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def id(self) -> str: ...


#: A row's place in a registry's (created_at, id) order: pages continue after it.
Position = tuple[int, str]


class Taken(enum.Enum):
    """A unique name (or audience) is another row's: nothing was written."""

    TAKEN = "taken"


class Stale(enum.Enum):
    """The stored row is no longer the one expected (or is gone): nothing was written."""

    STALE = "stale"


TAKEN: Final = Taken.TAKEN
STALE: Final = Stale.STALE


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A revocation event a write records as its transaction's last statement.

    Its id is the store's; ``storage.events.RevocationEvent`` is what was recorded.
    """

    kind: Kind
    time: int
    expires_at: int | None
    owner_id: str | None = None
    agent_id: str | None = None
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class Written(Generic[R]):
    """The row as stored after a write, and the revocation events it recorded."""

    row: R
    events: tuple[RevocationEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class RowPage(Generic[R]):
    """Rows in (created_at, id) order, and the last one's position when more follow."""

    rows: tuple[R, ...]
    last: Position | None
