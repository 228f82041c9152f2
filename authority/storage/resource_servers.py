"""The storage port of the resource servers registry (``management.resource_servers``).

A server's name and its audience are each unique (``TAKEN``). Registering, changing,
rotating the secret of and retiring a server each append their ledger entries in the
same transaction. See ``storage.registry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from authority.ledger.entries import Entry
from authority.storage.registry import Position, RowPage, Stale, Taken, Written


@dataclass(frozen=True, slots=True)
class ServerRow:
    id: str  # also its OAuth client_id
    name: str
    audience: str
    auth_method: str
    #: The keyed hash of its client secret (``secrets.SecretHasher``); None without one.
    secret_hash: str | None
    jwks: dict[str, Any] | None  # for private_key_jwt
    status: str  # active | retired
    created_at: int
    updated_at: int


class ResourceServerStore(Protocol):
    async def get(self, server_id: str) -> ServerRow | None:
        """The server, or None."""

    async def page(self, *, limit: int, after: Position | None) -> RowPage[ServerRow]:
        """Up to ``limit`` servers after ``after`` in (created_at, id) order."""

    async def hosts_active_tools(self, server_id: str) -> bool:
        """Whether an active tool lives on the server."""

    async def create(self, server: ServerRow, entries: Sequence[Entry]) -> ServerRow | Taken:
        """Insert the server and append ``entries``, unless its name or audience is taken."""

    async def replace(
        self, expected: ServerRow, new: ServerRow, *, entries: Sequence[Entry] = ()
    ) -> Written[ServerRow] | Stale | Taken:
        """Store ``new`` and append ``entries`` if the server is still ``expected`` and
        a new name is free."""
