"""The client-authentication port (``storage.clients``) on ``Tables``."""

from __future__ import annotations

from authority.storage.clients import RegisteredServer
from authority.storage.replay import SingleUse

from . import Tables


class MemoryClientStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def server(self, client_id: str) -> RegisteredServer | None:
        row = self._tables.resource_servers.get(client_id)
        if row is None:
            return None
        return RegisteredServer(
            id=row["id"],
            audience=row["audience"],
            auth_method=row["auth_method"],
            secret_hash=row.get("secret_hash"),
            jwks=row.get("jwks"),
            status=row["status"],
        )

    async def spend(self, use: SingleUse) -> bool:
        # No await between the test and the write: one winner on the event loop.
        fresh = self._tables.unspent([use])
        self._tables.spend([use], fresh)
        return fresh[0]
