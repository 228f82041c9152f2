"""The storage port of client authentication (RFC 6749 §2.3, RFC 7523 §2.2).

``server`` reads a resource server's registration, for an endpoint that needs nothing
else from storage (the revocation feed; introspection and revocation read it in their
own ports' one query); ``spend`` makes a client assertion's single use (RFC 7523 §3
item 7), committed when it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .replay import SingleUse


@dataclass(frozen=True, slots=True)
class RegisteredServer:
    """A resource server as registered (``resource_servers`` row)."""

    id: str
    audience: str
    auth_method: str
    secret_hash: str | None
    jwks: str | None
    status: str


class ClientStore(Protocol):
    async def server(self, client_id: str) -> RegisteredServer | None:
        """The registration of resource server ``client_id``; None when there is none."""

    async def spend(self, use: SingleUse) -> bool:
        """Record ``use``: True for exactly one caller however many race, across every
        instance, and False for every later one while the use is remembered."""
