"""The storage port of OAuth 2.0 Token Introspection (RFC 7662): one lookup, one consumption.

``lookup`` reads, in one round trip, the calling resource server's registration and the
grant of the token with a given SHA-256 digest, with its delegation, agent, owner and
tool; ``consume`` marks a single-use token's grant consumed, for exactly one caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class IntrospectionFacts:
    """The caller's registration and the token's grant, as stored now.

    Every member is None when its row does not exist (an unknown caller, an unknown
    digest, a grant whose delegation, agent, owner or tool is gone). The ``rs_`` members
    are those ``grants.client_auth.server_from_row`` reads.
    """

    # The calling resource server's registration.
    rs_id: str | None
    rs_audience: str | None
    rs_auth_method: str | None
    rs_secret_hash: str | None
    rs_jwks: str | None
    rs_status: str | None
    # The grant whose ``token_hash`` is the digest.
    grant_id: str | None
    decision: str | None
    token_hash: str | None
    grant_audience: str | None
    grant_expires_at: int | None
    revoked_at: int | None
    single_use: Any  # a bool; SQLite's driver gives 0 or 1
    consumed_at: int | None
    delegation_id: str | None
    agent_id: str | None
    owner_id: str | None
    # What the grant hangs on.
    delegation_status: str | None
    delegation_expires_at: int | None
    agent_status: str | None
    owner_status: str | None
    tool_status: str | None
    tool_server_id: str | None
    #: The delegation's scope (its JSON text) and the names of the calling server's
    #: active tools (comma-separated): what an active answer may tell the caller of the
    #: delegation, its own tools only.
    delegation_scope: str | None = None
    rs_tools: str | None = None


class IntrospectionStore(Protocol):
    async def lookup(self, client_id: str, token_hash: str) -> IntrospectionFacts:
        """The facts for the resource server ``client_id`` and the grant whose token's
        SHA-256 digest is ``token_hash``: one read, one consistent snapshot."""

    async def consume(self, jti: str, now: int) -> bool:
        """Mark the unrevoked, unconsumed grant of ``jti`` consumed at ``now``.

        True for exactly one caller however many race, across every instance; False
        for every other, and for a revoked or unknown ``jti``.
        """
