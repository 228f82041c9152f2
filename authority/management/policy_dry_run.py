"""``POST /v1/policies/dry-run``: would this call be allowed now, and why, with nothing spent.

Admins, and the owner of the delegation (another owner's is 404), ask about one call of
one delegation. The answer is the exchange's decision on the stored facts: the built-in
checks and the active Cedar version (``grants.decision``), then the delegation's call
cap and this minute's rate window, both only read. Nothing is written or spent: no
grant, no ledger entry, no call counted, no JWT id used, no rate window incremented,
and no containment violation (the identity checks, the delegation's signature and the
single use of an attestation are the agent's request's, and are not part of the
answer). A dry run is not a decision, so it is not in the ledger, where it could be
mistaken for one; who asked about what is logged (``authority.policy``, the API key's
id, the delegation, the tool and the answer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from authority.context import Services
from authority.errors import InvalidRequest, NotFound
from authority.grants import decision, loading
from authority.management.auth import Principal
from authority.management.inputs import Body
from authority.policy import rules
from authority.policy.arguments import ARGUMENTS, ArgumentsRejected, bind
from authority.policy.cedar import CedarPolicy
from authority.policy.checks import Deny, Facts, NeedsApproval, ToolCall
from authority.policy.reasons import Reason
from authority.secrets import valid_id

log = logging.getLogger("authority.policy")

Answer = Literal["allow", "deny", "approval_required"]


class DryRunBody(Body):
    delegation_id: str
    tool: str
    resource: str
    action: str
    arguments: dict[str, Any] | None = None
    audience: str | None = None  # default: the tool's resource server
    dpop_bound: bool = False
    # Default: access_token_lifetime, capped by the tool's as an exchange's is.
    lifetime: int | None = Field(None, ge=1, le=2**31 - 1)


@dataclass(frozen=True, slots=True)
class DryRun:
    decision: Answer
    reasons: list[str] = field(default_factory=list)
    policy_version: int = 0


def _call(services: Services, body: DryRunBody) -> ToolCall:
    for name in (body.tool, body.resource, body.action):
        if not name or len(name) > 2048:
            raise InvalidRequest("tool, resource and action must be 1 to 2048 characters.")
    bound = None
    if body.arguments is not None:
        limit = services.settings.authorization_details_max_arguments_bytes
        try:
            bound = bind({ARGUMENTS: body.arguments}, max_bytes=limit)
        except ArgumentsRejected as exc:
            raise InvalidRequest(str(exc)) from None
    return ToolCall(
        tool=body.tool,
        resource=body.resource,
        action=body.action,
        arguments_digest=bound.digest if bound is not None else None,
        arguments=bound.arguments if bound is not None else None,
    )


def _loggable(text: str, limit: int) -> str:
    """``text`` on one line of ASCII: control and other characters escaped."""
    return text[:limit].encode("unicode_escape").decode("ascii")


async def _limits(services: Services, facts: Facts) -> Reason | None:
    """The call cap and this minute's rate window, read, never counted."""
    delegation = facts.delegation
    if delegation.max_calls is not None and delegation.calls_used >= delegation.max_calls:
        return Reason.CALL_CAP_EXHAUSTED
    if delegation.rate_per_minute is not None:
        counted = await services.hot.get(f"rate:delegation:{delegation.id}:{facts.now // 60}")
        if counted is not None and int(counted) >= delegation.rate_per_minute:
            return Reason.RATE_LIMITED
    return None


async def dry_run(services: Services, principal: Principal, body: DryRunBody) -> DryRun:
    if not valid_id(body.delegation_id):
        raise NotFound("No such delegation.")
    owner = principal.owner_id if principal.role == "owner" else None
    delegation = await services.delegation_store.get(body.delegation_id, owner)
    if delegation is None:
        raise NotFound("No such delegation.")
    call = _call(services, body)
    loaded = await loading.load(services, delegation.agent_id, delegation.id, call.tool)
    settings, tool = services.settings, loaded.tool
    lifetime = body.lifetime or settings.access_token_lifetime
    if body.lifetime is None and tool is not None and tool.max_token_lifetime is not None:
        lifetime = min(lifetime, tool.max_token_lifetime)
    audience = body.audience if body.audience is not None else (tool.audience if tool else "")
    active = await services.policy.current()
    now = services.now()
    facts = decision.facts(
        services, loaded, call, audience=audience, lifetime=lifetime,
        dpop_bound=body.dpop_bound, now=now,
    )  # fmt: skip
    if facts is None:
        answer = DryRun("deny", [Reason.DELEGATION_INVALID.value], active.version)
    else:
        answer = await _answer(services, facts, active.policy, active.version)
    log.info(
        "policy dry run by %s on %s for %s: %s %s",
        principal.key_id,
        delegation.id,
        _loggable(call.tool, 200),
        answer.decision,
        _loggable(",".join(answer.reasons), 1000),  # a policy's @id may hold a newline
    )
    return answer


async def _answer(services: Services, facts: Facts, policy: CedarPolicy, version: int) -> DryRun:
    decided = rules.decide(facts, policy)
    reasons = rules.explain(facts, policy, decided)
    if isinstance(decided, Deny):
        return DryRun("deny", reasons, version)
    limited = await _limits(services, facts)
    if limited is not None:
        return DryRun("deny", [*reasons, limited.value], version)
    if isinstance(decided, NeedsApproval):
        return DryRun("approval_required", reasons, version)
    return DryRun("allow", reasons, version)
