"""The revocation port (``storage.revocation``) on ``Tables``."""

from __future__ import annotations

from authority.ledger.entries import entry_row
from authority.storage.revocation import Reason, RevocationFacts, TokenRevoked

from . import Tables
from . import column as _get


class MemoryRevocationStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def lookup(self, client_id: str, jti: str) -> RevocationFacts:
        tables = self._tables
        server = tables.resource_servers.get(client_id)
        agent = tables.agents.get(client_id)
        grant = tables.grant_by("jti", jti)
        return RevocationFacts(
            rs_id=_get(server, "id"),
            rs_audience=_get(server, "audience"),
            rs_auth_method=_get(server, "auth_method"),
            rs_secret_hash=_get(server, "secret_hash"),
            rs_jwks=_get(server, "jwks"),
            rs_status=_get(server, "status"),
            agent_client_id=_get(agent, "id"),
            agent_client_jwks=_get(agent, "jwks"),
            agent_client_status=_get(agent, "status"),
            grant_id=_get(grant, "id"),
            decision=_get(grant, "decision"),
            grant_audience=_get(grant, "audience"),
            agent_id=_get(grant, "agent_id"),
            owner_id=_get(grant, "owner_id"),
            delegation_id=_get(grant, "delegation_id"),
            tool=_get(grant, "tool"),
            revoked_at=_get(grant, "revoked_at"),
        )

    async def revoke(
        self, jti: str, *, now: int, actor: str, reason: Reason, event_expires_at: int
    ) -> TokenRevoked | None:
        tables = self._tables
        grant = tables.grant_by("jti", jti)
        if grant is None or grant.get("revoked_at") is not None:
            return None
        # Validated before anything changes, as the SQL transaction rolls back on it.
        entry = entry_row(
            kind="token_revoked",
            version=1,
            created_at=now,
            record={
                "jti": jti,
                "grant_id": grant["id"],
                "agent_id": grant.get("agent_id"),
                "owner_id": grant.get("owner_id"),
                "delegation_id": grant.get("delegation_id"),
                "tool": grant.get("tool"),
                "actor": actor,
                "reason": reason,
            },
        )
        event_id = len(tables.revocation_events) + 1
        grant["revoked_at"] = now
        tables.ledger_entries.append(entry)
        tables.revocation_events.append(
            {
                "id": event_id,
                "created_at": now,
                "kind": "token",
                "jti": jti,
                "delegation_id": grant.get("delegation_id"),
                "agent_id": grant.get("agent_id"),
                "owner_id": grant.get("owner_id"),
                "expires_at": event_expires_at,
                "tool": None,
            }
        )
        return TokenRevoked(
            event_id=event_id,
            grant_id=grant["id"],
            agent_id=grant.get("agent_id"),
            owner_id=grant.get("owner_id"),
            delegation_id=grant.get("delegation_id"),
            tool=grant.get("tool"),
        )
