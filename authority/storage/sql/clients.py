"""The client-authentication port (``storage.clients``) in SQL, on the hot path's driver.

The registration is one read by primary key; the assertion's use is one claim
(``storage.sql.replay``) in a transaction of its own.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from authority.storage.clients import RegisteredServer
from authority.storage.driver import Driver
from authority.storage.replay import SingleUse
from authority.storage.schema import resource_servers

from . import replay
from .columns import SERVER_COLUMNS

_SERVER = select(*SERVER_COLUMNS).where(resource_servers.c.id == bindparam("client_id"))


class SqlClientStore:
    def __init__(self, sql: Driver) -> None:
        self._sql = sql

    async def server(self, client_id: str) -> RegisteredServer | None:
        row = await self._sql.fetchrow(_SERVER, {"client_id": client_id})
        if row is None:
            return None
        return RegisteredServer(
            id=row.rs_id,
            audience=row.rs_audience,
            auth_method=row.rs_auth_method,
            secret_hash=row.rs_secret_hash,
            jwks=row.rs_jwks,
            status=row.rs_status,
        )

    async def spend(self, use: SingleUse) -> bool:
        (claimed,) = await replay.spend_now(self._sql, [use])
        return claimed
