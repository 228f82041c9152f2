"""What happens after a decision, as values: published on ``services.events``
(``authority.bus``) once the outcome is committed.

The grants publish; containment, webhooks, metrics and the revocation feed subscribe
(``authority.subscribers``, wired by ``authority.app``). Not to be confused with
``authority.revocations.events``: the revocation rows the feed serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authority.policy.reasons import Reason
from authority.storage.events import RevocationEvent
from authority.storage.hot import Claim


@dataclass(frozen=True, slots=True)
class ExchangeDenied:
    """A denied grant, committed with its ledger entry."""

    agent_id: str | None
    owner_id: str | None
    reason: Reason
    #: The denial provably comes from the agent: it authenticated, and this request
    #: spent its attestation (the first use), so the denial may count against it.
    attributable: bool
    #: The attestation's replay-cache entry, when the request has not claimed it yet: the
    #: denial counts only if claiming it then succeeds. None: claimed already.
    first_use: Claim | None = None
    #: The denied grant's row (its ledger entry names it too).
    grant_id: str | None = None
    delegation_id: str | None = None


@dataclass(frozen=True, slots=True)
class ExchangeIssued:
    """A token issued (its grant and ledger entry committed)."""

    agent_id: str
    grant_id: str | None = None
    delegation_id: str | None = None
    tool: str | None = None  # the tool it is for: joins the agent's baseline (baselines)


@dataclass(frozen=True, slots=True)
class ExchangePending:
    """An exchange held for the owner's approval (see ``ApprovalRequested``)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class ApprovalRequested:
    """The owner is asked to approve one call."""

    owner_id: str
    approval_id: str
    agent_id: str
    delegation_id: str
    intent: str
    tool: str
    resource: str
    action: str
    audience: str
    reason: str
    expires_at: int
    # The exact arguments the owner is asked to approve, when the agent sent them.
    arguments_digest: str | None = None
    arguments: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    # Set when the agent's baseline asked (reason ``behaviour_step_up``): which rule
    # (``new_tool``, ``burst``) and what the owner is shown.
    deviation: str | None = None
    explanation: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalRedeemed:
    """An approved call asked for by its agent (CIBA poll): issued, or refused now."""

    agent_id: str | None
    issued: bool


@dataclass(frozen=True, slots=True)
class TokenIntrospected:
    """Introspection answered a resource server (RFC 7662): active or not.

    ``client_id``: the calling resource server's; ``grant_id``/``agent_id``: the
    token's grant, when the token is one the authority issued (None otherwise).
    """

    client_id: str
    active: bool
    grant_id: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class InactiveTokenPresented:
    """Introspection answered inactive for one of our genuine tokens.

    Containment weighs whether it was the agent's doing (a token misused at another
    server). ``row``: introspection's joined row; ``claims``/``exp``: the verified
    token's; ``token_hash``: the presented token's hash (never the token);
    ``audience``: the calling resource server's.
    """

    row: Any
    claims: Mapping[str, Any]
    exp: int
    token_hash: str
    audience: str | None
    now: int


@dataclass(frozen=True, slots=True)
class CallBlocked:
    """A gateway blocked a call made with one of the agent's tokens (its record committed).

    ``jti``: the token's, whose grant is the agent's and was issued for ``gateway``, the
    resource server that blocked the call by its command rule ``rule``.
    """

    call_id: str
    jti: str
    agent_id: str
    owner_id: str
    gateway: str
    rule: str
    now: int


@dataclass(frozen=True, slots=True)
class AgentContained:
    """Containment quarantined an agent (committed, in force everywhere)."""

    agent_id: str
    owner_id: str
    reason: str
    trigger: str
    violations: float
    window: int
    threshold: int
    containments: int
    autonomy_level: int
    autonomy_lowered: bool
    #: From the request that triggered it to the quarantine's commit.
    seconds: float


@dataclass(frozen=True, slots=True)
class Revoked:
    """Revocation events committed; every instance's feed is to be woken."""

    events: tuple[RevocationEvent, ...]
