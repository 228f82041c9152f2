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

The rows are written and read through the exchange port (``storage.exchange``), in the
exchange's and the poll's own transactions; here are the values the flows pass it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from authority.context import Services
from authority.ledger.entries import Entry
from authority.policy.checks import ToolCall
from authority.secrets import new_secret
from authority.settings import Settings
from authority.storage.exchange import ApprovalFacts, ClosedApproval, NewApproval

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
    # What is unusual about the call when the agent's baseline asked (authority.behaviour):
    # shown to the owner as text, never as markup.
    explanation: str | None = None

    def tool_call(self) -> ToolCall:
        """The call approved: the one the token is issued for, arguments included."""
        return ToolCall(
            self.tool, self.resource, self.action, self.arguments_digest, self.arguments
        )

    def to_json(self) -> str:
        bound = {
            "arguments_digest": self.arguments_digest,
            "arguments": self.arguments,
            "explanation": self.explanation,
        }
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
            explanation=value.get("explanation"),
        )


def new_auth_req_id() -> str:
    return new_secret(AUTH_REQ_PREFIX)


def approval_id(services: Services, auth_req_id: str) -> str | None:
    """The row id an ``auth_req_id`` stands for; None when it cannot be one of ours."""
    if _AUTH_REQ_ID.match(auth_req_id) is None:
        return None
    return f"{ID_PREFIX}_{services.hasher.hash('auth_req_id:' + auth_req_id)[:32]}"


def new_approval(
    settings: Settings,
    *,
    row_id: str,
    now: int,
    owner_id: str,
    agent_id: str,
    delegation_id: str,
    call: CallRequest,
    reason: str,
) -> NewApproval:
    """The pending request for ``call``, open for ``approval_lifetime`` seconds."""
    return NewApproval(
        id=row_id,
        created_at=now,
        expires_at=now + settings.approval_lifetime,
        owner_id=owner_id,
        agent_id=agent_id,
        delegation_id=delegation_id,
        request=call.to_json(),
        reason=reason,
        poll_interval=settings.approval_poll_interval,
    )


class _Request(Protocol):
    """An approval request as read: ``ApprovalFacts``, or a row of the approvals table."""

    @property
    def id(self) -> str: ...
    @property
    def owner_id(self) -> str: ...
    @property
    def agent_id(self) -> str: ...
    @property
    def delegation_id(self) -> str: ...
    @property
    def request(self) -> str: ...


def decision_entry(
    row: _Request, *, decision: str, actor: str, reason: str | None, now: int
) -> Entry:
    """The ``approval_decided`` ledger entry of a decision on ``row``."""
    call = CallRequest.from_json(row.request)
    record: dict[str, Any] = {
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
    }
    return ("approval_decided", 2, now, record)


def closed_at_issue(row: ApprovalFacts, reason: str, now: int) -> ClosedApproval:
    """An approved call that a rule refuses at issue time (delegation revoked, agent
    quarantined, ...) is over: denied by the authority, with the rule's code."""
    return ClosedApproval(
        approval_id=row.id,
        reason=reason,
        decided_by=AUTHORITY_ACTOR,
        decided_at=now,
        entry=decision_entry(row, decision="denied", actor=AUTHORITY_ACTOR, reason=reason, now=now),
    )
