"""The decision on one call's facts: the built-in checks (``policy.checks``), then Cedar.

One function for every caller that decides: the token exchange and the CIBA poll
(``grants.decision``), the API's dry run, and ``authority policy test``, which runs an
owner's example requests offline, so that a test passes only if the server would decide
the same.
"""

from __future__ import annotations

from authority.policy.cedar import CedarPolicy
from authority.policy.checks import ALLOW, Decision, Deny, Facts, NeedsApproval, evaluate
from authority.policy.reasons import Reason


def decide(facts: Facts, policy: CedarPolicy) -> Decision:
    """The built-in checks first (the first that is not ``Allow``), then ``policy``.

    A Cedar ``forbid`` annotated ``@approval("owner")`` asks the owner; any other forbid
    refuses, even a call the built-in checks would have sent to the owner.
    """
    decision = evaluate(facts)
    if isinstance(decision, Deny):
        return decision
    verdict = policy.evaluate(facts)
    if not verdict.allowed and not verdict.needs_approval:
        return Deny(Reason.POLICY_DENIED)
    if isinstance(decision, NeedsApproval):
        return decision
    if not verdict.allowed:
        return NeedsApproval(Reason.APPROVAL_REQUIRED)
    return ALLOW


def explain(facts: Facts, policy: CedarPolicy, decision: Decision) -> list[str]:
    """Why: the rule's reason code, and the ``@id`` of each Cedar policy that said so."""
    if not isinstance(decision, Deny | NeedsApproval):
        return []
    reasons = [decision.reason.value]
    if decision.reason in (Reason.POLICY_DENIED, Reason.APPROVAL_REQUIRED):
        reasons.extend(f"policy:{name}" for name in policy.evaluate(facts).policy_ids)
    return reasons
