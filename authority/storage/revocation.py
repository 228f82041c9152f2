"""The storage port of OAuth 2.0 Token Revocation (RFC 7009): one lookup, one revocation.

``lookup`` reads the caller (a resource server or an agent, by client id) and the grant
of a token's ``jti``; ``revoke`` marks the grant revoked, appends its ``token_revoked``
ledger entry and records its revocation event, all in one transaction or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

#: Who revoked the token, as the ledger entry says.
Reason = Literal["revoked_by_agent", "revoked_by_resource_server"]


@dataclass(frozen=True, slots=True)
class RevocationFacts:
    """The caller's registration (as a server or as an agent) and the token's grant.

    Every member is None when its row does not exist.
    """

    # The caller as a resource server (``grants.client_auth.server_from_row``).
    rs_id: str | None
    rs_audience: str | None
    rs_auth_method: str | None
    rs_secret_hash: str | None
    rs_jwks: str | None
    rs_status: str | None
    # The caller as an agent.
    agent_client_id: str | None
    agent_client_jwks: str | None
    agent_client_status: str | None
    # The grant of the token's jti.
    grant_id: str | None
    decision: str | None
    grant_audience: str | None
    agent_id: str | None
    owner_id: str | None
    delegation_id: str | None
    tool: str | None
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    """What a revocation committed: the grant it revoked and the event it recorded."""

    event_id: int
    grant_id: str
    agent_id: str | None
    owner_id: str | None
    delegation_id: str | None
    tool: str | None


class RevocationStore(Protocol):
    async def lookup(self, client_id: str, jti: str) -> RevocationFacts:
        """The facts for the caller ``client_id`` and the grant of ``jti``: one read."""

    async def revoke(
        self, jti: str, *, now: int, actor: str, reason: Reason, event_expires_at: int
    ) -> TokenRevoked | None:
        """Revoke the grant of ``jti`` if it is not revoked yet.

        In one transaction: ``revoked_at`` is set to ``now``, a ``token_revoked`` ledger
        entry names ``actor`` and ``reason``, and a ``token`` revocation event that
        expires at ``event_expires_at`` is recorded. None, with nothing written, when the
        grant is already revoked (a concurrent revocation won) or unknown.
        """
