"""Approval requests: a call that needs the owner's approval, as OpenID CIBA (poll mode) sees it.

An exchange whose call needs approval (``policy.checks.NeedsApproval``, or a Cedar
``forbid`` annotated ``@approval("owner")``) is neither granted nor refused: the token
endpoint answers with an ``auth_req_id`` (CIBA §7.3), the owner approves or denies
(``approvals.decisions``), and the agent polls the token endpoint with
``grant_type=urn:openid:params:grant-type:ciba`` (``grants.ciba``).

The ``auth_req_id`` is a generated secret of 256 bits (CIBA §7.3: it "MUST contain
sufficient entropy ... to make brute-force guessing or forgery of a valid auth_req_id
computationally infeasible"). Like every other bearer value it is never stored: the
approval's id is a keyed hash of it, so the agent's poll finds the row by hashing what it
sent, and the owner-facing id (shown in lists, webhooks and the ledger) polls nothing.
It is also bound to the agent: only a poll authenticated as the agent that asked is
answered (CIBA §11: ``invalid_grant`` "if the auth_req_id ... was issued to another
Client").

Life of a row: ``pending`` -> ``approved`` or ``denied`` (the owner, or the authority
when a rule refuses the approved call at issue time) -> ``used`` once its one token has
been issued. A row past ``expires_at`` that was not used is expired, whatever it says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.context import Services
from authority.policy.checks import ToolCall
from authority.secrets import new_secret
from authority.storage.driver import Executes, Transaction
from authority.storage.schema import approvals
from authority.storage.sql.ledger import append

AUTH_REQ_PREFIX: Final = "ar"
ID_PREFIX: Final = "apr"
#: Who decides when a rule refuses an approved call at the moment of issue.
AUTHORITY_ACTOR: Final = "authority"
#: CIBA §11 slow_down: "the interval MUST be increased by at least 5 seconds".
SLOW_DOWN_STEP: Final = 5
_AUTH_REQ_ID = re.compile(r"^ar_[A-Za-z0-9_-]{20,100}$")


@dataclass(frozen=True, slots=True)
class CallRequest:
    """The one call awaiting approval, as the exchange understood it."""

    tool: str
    resource: str
    action: str
    audience: str
    intent: str
    lifetime: int
    jkt: str | None  # the DPoP key the agent asked the token to be bound to, if any
    # The exact arguments the owner approves (shown to them), and the digest the token
    # will carry (policy.arguments); absent from rows of calls that bound none.
    arguments_digest: str | None = None
    arguments: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def tool_call(self) -> ToolCall:
        """The call approved: the one the token is issued for, arguments included."""
        return ToolCall(
            self.tool, self.resource, self.action, self.arguments_digest, self.arguments
        )

    def to_json(self) -> str:
        bound = {"arguments_digest": self.arguments_digest, "arguments": self.arguments}
        return orjson.dumps(
            {
                "tool": self.tool,
                "resource": self.resource,
                "action": self.action,
                "audience": self.audience,
                "intent": self.intent,
                "lifetime": self.lifetime,
                "jkt": self.jkt,
                **{name: value for name, value in bound.items() if value is not None},
            },
            option=orjson.OPT_SORT_KEYS,
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> CallRequest:
        value: dict[str, Any] = orjson.loads(text)
        return cls(
            tool=value["tool"],
            resource=value["resource"],
            action=value["action"],
            audience=value["audience"],
            intent=value["intent"],
            lifetime=int(value["lifetime"]),
            jkt=value.get("jkt"),
            arguments_digest=value.get("arguments_digest"),
            arguments=value.get("arguments"),
        )


def new_auth_req_id() -> str:
    return new_secret(AUTH_REQ_PREFIX)


def approval_id(services: Services, auth_req_id: str) -> str | None:
    """The row id an ``auth_req_id`` stands for; None when it cannot be one of ours."""
    if _AUTH_REQ_ID.match(auth_req_id) is None:
        return None
    return f"{ID_PREFIX}_{services.hasher.hash('auth_req_id:' + auth_req_id)[:32]}"


_PENDING_COUNT = select(func.count().label("n")).where(
    approvals.c.agent_id == bindparam("agent_id"),
    approvals.c.status == "pending",
    approvals.c.expires_at > bindparam("now"),
)
_INSERT = approvals.insert()


async def pending_count(tx: Transaction, agent_id: str, now: int) -> int:
    row = await tx.fetchrow(_PENDING_COUNT, {"agent_id": agent_id, "now": now})
    return int(row.n) if row is not None else 0


async def insert(
    conn: Executes,
    services: Services,
    *,
    row_id: str,
    now: int,
    owner_id: str,
    agent_id: str,
    delegation_id: str,
    call: CallRequest,
    reason: str,
) -> None:
    settings = services.settings
    await conn.execute(
        _INSERT,
        {
            "id": row_id,
            "created_at": now,
            "expires_at": now + settings.approval_lifetime,
            "status": "pending",
            "owner_id": owner_id,
            "agent_id": agent_id,
            "delegation_id": delegation_id,
            "request": call.to_json(),
            "reason": reason,
            "decided_at": None,
            "decided_by": None,
            "decision_reason": None,
            "last_polled_at": None,
            "poll_interval": settings.approval_poll_interval,
        },
    )


_LOAD = select(approvals).where(approvals.c.id == bindparam("id"))


async def load(conn: AsyncConnection, row_id: str) -> Any:
    return (await conn.execute(_LOAD, {"id": row_id})).first()


async def note_poll(services: Services, row_id: str, now: int) -> bool:
    """Record a poll of a pending request; False when it came too soon (slow_down).

    One conditional UPDATE, so two instances answering two fast polls cannot both say
    "pending". A poll that is too soon does not move ``last_polled_at`` (the client must
    wait from its last accepted poll) and raises the interval by 5 s (CIBA §11).
    """
    async with services.engine.begin() as conn:
        accepted = (
            await conn.execute(
                update(approvals)
                .where(
                    approvals.c.id == row_id,
                    approvals.c.status == "pending",
                    (approvals.c.last_polled_at.is_(None))
                    | (approvals.c.last_polled_at + approvals.c.poll_interval <= now),
                )
                .values(last_polled_at=now)
                .returning(approvals.c.id)
            )
        ).first()
        if accepted is not None:
            return True
        await conn.execute(
            update(approvals)
            .where(approvals.c.id == row_id, approvals.c.status == "pending")
            .values(poll_interval=approvals.c.poll_interval + SLOW_DOWN_STEP)
        )
    return False


_CONSUME = (
    update(approvals)
    .where(
        approvals.c.id == bindparam("id"),
        approvals.c.status == "approved",
        approvals.c.expires_at > bindparam("now"),
    )
    .values(status="used")
    .returning(approvals.c.id)
)


async def consume(tx: Transaction, row_id: str, now: int) -> bool:
    """Mark an approved request used, in the transaction that issues its token.

    True for exactly one caller across all instances: a second poll of the same approved
    call finds nothing to consume.
    """
    return await tx.fetchrow(_CONSUME, {"id": row_id, "now": now}) is not None


async def record_decision(
    conn: Executes,
    row: Any,
    *,
    decision: str,
    actor: str,
    reason: str | None,
    now: int,
) -> None:
    """The ledger entry of a decision (the row is updated by the caller)."""
    call = CallRequest.from_json(row.request)
    await append(
        conn,
        kind="approval_decided",
        version=2,
        created_at=now,
        record={
            "approval_id": row.id,
            "decision": decision,
            "owner_id": row.owner_id,
            "agent_id": row.agent_id,
            "delegation_id": row.delegation_id,
            "tool": call.tool,
            "resource": call.resource,
            "action": call.action,
            "actor": actor,
            "reason": reason,
        },
    )


_REFUSE = (
    update(approvals)
    .where(approvals.c.id == bindparam("id"), approvals.c.status == "approved")
    .values(
        status="denied",
        decided_at=bindparam("now"),
        decided_by=AUTHORITY_ACTOR,
        decision_reason=bindparam("reason"),
    )
    .returning(approvals.c.id)
)


async def refuse_at_issue(tx: Transaction, row: Any, reason: str, now: int) -> None:
    """An approved call that a rule refuses at issue time (delegation revoked, agent
    quarantined, ...) is over: denied by the authority, with the rule's code."""
    changed = await tx.fetchrow(_REFUSE, {"id": row.id, "now": now, "reason": reason})
    if changed is not None:
        await record_decision(
            tx, row, decision="denied", actor=AUTHORITY_ACTOR, reason=reason, now=now
        )
