"""The introspection port (``storage.introspection``) on ``Tables``."""

from __future__ import annotations

from authority.storage.introspection import IntrospectionFacts

from . import Tables
from . import column as _get


class MemoryIntrospectionStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def lookup(self, client_id: str, token_hash: str) -> IntrospectionFacts:
        tables = self._tables
        server = tables.resource_servers.get(client_id)
        grant = tables.grant_by("token_hash", token_hash)
        delegation = tables.delegations.get(_get(grant, "delegation_id"))
        agent = tables.agents.get(_get(grant, "agent_id"))
        owner = tables.owners.get(_get(grant, "owner_id"))
        tool = tables.tool_named(_get(grant, "tool")) if _get(grant, "tool") is not None else None
        return IntrospectionFacts(
            rs_id=_get(server, "id"),
            rs_audience=_get(server, "audience"),
            rs_auth_method=_get(server, "auth_method"),
            rs_secret_hash=_get(server, "secret_hash"),
            rs_jwks=_get(server, "jwks"),
            rs_status=_get(server, "status"),
            grant_id=_get(grant, "id"),
            decision=_get(grant, "decision"),
            token_hash=_get(grant, "token_hash"),
            grant_audience=_get(grant, "audience"),
            grant_expires_at=_get(grant, "expires_at"),
            revoked_at=_get(grant, "revoked_at"),
            single_use=_get(grant, "single_use"),
            consumed_at=_get(grant, "consumed_at"),
            delegation_id=_get(grant, "delegation_id"),
            agent_id=_get(grant, "agent_id"),
            owner_id=_get(grant, "owner_id"),
            delegation_status=_get(delegation, "status"),
            delegation_expires_at=_get(delegation, "expires_at"),
            agent_status=_get(agent, "status"),
            owner_status=_get(owner, "status"),
            tool_status=_get(tool, "status"),
            tool_server_id=_get(tool, "resource_server_id"),
            delegation_scope=_get(delegation, "scope"),
            rs_tools=",".join(
                str(row["name"])
                for row in tables.tools.values()
                if row.get("resource_server_id") == client_id and row.get("status") == "active"
            )
            or None,
        )

    async def consume(self, jti: str, now: int) -> bool:
        # No await between the test and the write: one winner on the event loop.
        grant = self._tables.grant_by("jti", jti)
        if grant is None or grant.get("consumed_at") is not None:
            return False
        if grant.get("revoked_at") is not None:
            return False
        grant["consumed_at"] = now
        return True
