"""A build of the authority for one comparison only: grant rows without ledger entries.

``python -m bench.load --ledger-cost`` runs the same exchange load against this app and
against the real one (``authority.asgi``), to show what the tamper-evident ledger costs
in issuance throughput. The product has no switch to turn the ledger off; this module
replaces the exchange's ledger append (in ``storage.sql.grant_writes``, and stops the
sequencer) in its own process.
"""

from __future__ import annotations

from typing import Any

import authority.storage.sql.exchange as exchange
import authority.storage.sql.grant_writes as grant_writes
from authority import app as app_module
from authority.context import Services
from authority.storage.driver import Executes
from authority.storage.schema import grants
from authority.storage.sql import replay


def _no_entry(**_: Any) -> dict[str, Any]:
    return {}


async def _grant_only(conn: Executes, rows: grant_writes.Rows) -> None:
    await conn.execute(grant_writes.INSERT_GRANT, rows.grant)


async def _start_without_sequencer(services: Services) -> None:
    await _original_start(services)
    if services.sequencer is not None:
        await services.sequencer.stop()


# Replaced by name in the modules' namespaces, which is what their code looks up: no
# entry is built (validated, serialised) or inserted, on SQLite or PostgreSQL.
_GRANT_ONLY = [insert for insert in grant_writes.RECORDED if insert[0] is grants]
setattr(grant_writes, "entry_row", _no_entry)  # noqa: B010
setattr(grant_writes, "insert", _grant_only)  # noqa: B010
setattr(grant_writes, "PG_RECORD", grant_writes.pg_record(inserts=_GRANT_ONLY))  # noqa: B010
setattr(  # noqa: B010
    grant_writes,
    "PG_CLAIM_AND_RECORD",
    grant_writes.pg_record(replay.pg_claims(1)[0], inserts=_GRANT_ONLY),
)
setattr(  # noqa: B010
    exchange,
    "PG_SPEND_AND_RECORD",
    tuple(
        exchange.pg_spend_and_record(n, inserts=_GRANT_ONLY)
        for n in range(len(exchange.PG_SPEND_AND_RECORD))
    ),
)
_original_start = app_module.start
setattr(app_module, "start", _start_without_sequencer)  # noqa: B010

from authority.asgi import app  # noqa: E402  (after the replacement above)

__all__ = ["app"]
