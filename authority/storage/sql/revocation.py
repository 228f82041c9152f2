"""The revocation port (``storage.revocation``) in SQL, through the engine.

The lookup is one query on the autocommit reader: the caller (a resource server or an
agent, by id) and the token's grant. A revocation writes ``grants.revoked_at``, a
``token_revoked`` ledger entry and a revocation event in one transaction; introspection
reads ``revoked_at`` on every call, so the token is inactive on every instance from the
commit on.
"""

from __future__ import annotations

from sqlalchemy import bindparam, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authority.storage.revocation import Reason, RevocationFacts, TokenRevoked
from authority.storage.schema import agents, grants, resource_servers
from authority.storage.sql import events
from authority.storage.sql.ledger import append

from .columns import SERVER_COLUMNS

_client_agent = agents.alias("client_agent")
_ONE = select(literal(1).label("one")).subquery("one")
#: The caller (a resource server or an agent, by id) and the token's grant, in one query.
_QUERY = select(
    *SERVER_COLUMNS,
    _client_agent.c.id.label("agent_client_id"),
    _client_agent.c.jwks.label("agent_client_jwks"),
    _client_agent.c.status.label("agent_client_status"),
    grants.c.id.label("grant_id"),
    grants.c.decision,
    grants.c.audience.label("grant_audience"),
    grants.c.agent_id,
    grants.c.owner_id,
    grants.c.delegation_id,
    grants.c.tool,
    grants.c.revoked_at,
).select_from(
    _ONE.outerjoin(resource_servers, resource_servers.c.id == bindparam("client_id"))
    .outerjoin(_client_agent, _client_agent.c.id == bindparam("client_id"))
    .outerjoin(grants, grants.c.jti == bindparam("jti"))
)


class SqlRevocationStore:
    def __init__(self, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader

    async def lookup(self, client_id: str, jti: str) -> RevocationFacts:
        async with self._reader.connect() as conn:
            row = (await conn.execute(_QUERY, {"client_id": client_id, "jti": jti})).one()
        return RevocationFacts(**row._mapping)

    async def revoke(
        self, jti: str, *, now: int, actor: str, reason: Reason, event_expires_at: int
    ) -> TokenRevoked | None:
        async with self._engine.begin() as conn:
            changed = (
                await conn.execute(
                    update(grants)
                    .where(grants.c.jti == jti, grants.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                    .returning(
                        grants.c.id,
                        grants.c.agent_id,
                        grants.c.owner_id,
                        grants.c.delegation_id,
                        grants.c.tool,
                    )
                )
            ).first()
            if changed is None:
                return None  # a concurrent revocation of the same token won
            await append(
                conn,
                kind="token_revoked",
                version=1,
                created_at=now,
                record={
                    "jti": jti,
                    "grant_id": changed.id,
                    "agent_id": changed.agent_id,
                    "owner_id": changed.owner_id,
                    "delegation_id": changed.delegation_id,
                    "tool": changed.tool,
                    "actor": actor,
                    "reason": reason,
                },
            )
            event = await events.record(
                conn,
                kind="token",
                now=now,
                expires_at=event_expires_at,
                jti=jti,
                delegation_id=changed.delegation_id,
                agent_id=changed.agent_id,
                owner_id=changed.owner_id,
            )
        return TokenRevoked(
            event_id=event.id,
            grant_id=changed.id,
            agent_id=changed.agent_id,
            owner_id=changed.owner_id,
            delegation_id=changed.delegation_id,
            tool=changed.tool,
        )
