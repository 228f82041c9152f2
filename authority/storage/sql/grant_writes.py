"""Grant rows in SQL: a grant and its ledger entry, inserted together.

Every decision on a token request writes one ``grants`` row and one ``grant`` entry
(``storage.exchange.GrantWrite``). In a transaction they are two INSERTs (``insert``);
on PostgreSQL they can also be CTEs of one statement (``pg_record``), so that a write
that commits alone costs one round trip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, literal, select

from authority.ledger.entries import entry_row
from authority.storage.driver import Executes
from authority.storage.exchange import GrantWrite, NewGrant
from authority.storage.schema import grants, ledger_entries

from . import replay
from .ledger import COLUMNS as ENTRY_COLUMNS
from .ledger import INSERT as INSERT_ENTRY

# Columns a new grant row leaves to their defaults (NULL): set later, by use or revocation.
_UNSET = ("consumed_at", "revoked_at")
GRANT_COLUMNS = tuple(column.name for column in grants.c if column.name not in _UNSET)
if {f.name for f in dataclasses.fields(NewGrant)} != set(GRANT_COLUMNS):
    raise RuntimeError("storage.exchange.NewGrant does not name the grants columns")
INSERT_GRANT = grants.insert().values({name: bindparam(name) for name in GRANT_COLUMNS})


@dataclass(frozen=True, slots=True)
class Rows:
    """One grant row and its ledger entry's row (validated: ``entry_row``)."""

    grant: dict[str, Any]
    entry: dict[str, Any]

    def prefixed(self) -> dict[str, Any]:
        """Both rows as the parameters of the one-statement writes (``pg_record``)."""
        params = {f"g_{name}": value for name, value in self.grant.items()}
        params.update({f"e_{name}": value for name, value in self.entry.items()})
        return params


def rows(write: GrantWrite) -> Rows:
    """The rows of ``write``; ``MalformedEntry`` (before anything is written) if its
    entry does not fit its schema."""
    grant = write.grant
    kind, version, created_at, record = write.entry
    return Rows(
        {name: getattr(grant, name) for name in GRANT_COLUMNS},
        entry_row(kind=kind, version=version, created_at=created_at, record=record),
    )


async def insert(conn: Executes, rows: Rows) -> None:
    """Both rows, in the caller's transaction."""
    await conn.execute(INSERT_GRANT, rows.grant)
    await conn.execute(INSERT_ENTRY, rows.entry)


#: What an issued or denied exchange writes: (table, parameter prefix, columns, CTE name).
RECORDED = (
    (grants, "g_", GRANT_COLUMNS, "granted"),
    (ledger_entries, "e_", ENTRY_COLUMNS, "entered"),
)


def pg_record(source: Any = None, *, inserts: Sequence[Any] = RECORDED, result: Any = None) -> Any:
    """PostgreSQL: the grant and its ledger entry inserted by one statement.

    The rows' values are parameters ``g_<column>`` and ``e_<column>`` (``Rows.prefixed``).
    With ``source`` (a CTE), both are inserted once per row it yields, so not at all when
    it yields none; the statement returns ``source``'s rows, or ``result`` when given.
    """
    inserted = []
    for table, prefix, columns, name in inserts:
        values = select(*(bindparam(prefix + c, type_=table.c[c].type) for c in columns))
        if source is not None:
            values = values.select_from(source)
        inserted.append(table.insert().from_select(columns, values).cte(name))
    if result is None:
        result = select(*source.c) if source is not None else select(literal(1).label("one"))
    return result.add_cte(*inserted)


PG_RECORD = pg_record()
#: Both rows of a denial, inserted only if the attestation's use is new (else no row).
PG_CLAIM_AND_RECORD = pg_record(replay.pg_claims(1)[0])
