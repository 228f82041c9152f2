"""A build of the authority for one comparison only: grant rows without ledger entries.

``python -m bench.load --ledger-cost`` runs the same exchange load against this app and
against the real one (``authority.asgi``), to show what the tamper-evident ledger costs
in issuance throughput. The product has no switch to turn the ledger off; this module
replaces the exchange's ledger append (and stops the sequencer) in its own process.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

import authority.grants.token_exchange as token_exchange
from authority import app as app_module
from authority.context import Services


async def _no_entry(conn: AsyncConnection, **_: Any) -> None:
    return None


async def _start_without_sequencer(services: Services) -> None:
    await _original_start(services)
    if services.sequencer is not None:
        await services.sequencer.stop()


# Replaced by name in the modules' namespaces, which is what their code looks up.
setattr(token_exchange, "append", _no_entry)  # noqa: B010
_original_start = app_module.start
setattr(app_module, "start", _start_without_sequencer)  # noqa: B010

from authority.asgi import app  # noqa: E402  (after the replacement above)

__all__ = ["app"]
