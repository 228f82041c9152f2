"""The decision on one tool call: the built-in checks (``policy.checks``), then Cedar.

Shared by the token exchange (RFC 8693), which decides a call when it is asked for, and
the CIBA poll, which decides an approved call again at issue. The answer is a value:
``Allow``, ``NeedsApproval(reason)`` (the owner may allow this one call), or
``Deny(reason)``, whose reason is the stable code the grant row and the error carry.
"""

from __future__ import annotations

from authority.context import Services
from authority.policy import rules
from authority.policy.cedar import CedarPolicy
from authority.policy.checks import Decision, Facts, ToolCall

from .loading import Loaded
from .workload_auth import Proven, policy_context


def facts(
    services: Services,
    loaded: Loaded,
    call: ToolCall,
    *,
    audience: str,
    lifetime: int,
    dpop_bound: bool,
    now: int,
    workload: Proven | None = None,
) -> Facts | None:
    """What the rules decide on; None without an agent and a delegation to decide for."""
    if loaded.agent is None or loaded.delegation is None:
        return None
    return Facts(
        now=now,
        agent=loaded.agent,
        delegation=loaded.delegation,
        tool=loaded.tool,
        call=call,
        audience=audience,
        lifetime=lifetime,
        server_max_lifetime=services.settings.access_token_max_lifetime,
        dpop_bound=dpop_bound,
        workload=policy_context(workload.identity) if workload is not None else None,
    )


def decide(services: Services, facts: Facts, policy: CedarPolicy) -> Decision:
    """The built-in checks first, then Cedar (``policy.rules.decide``): ``policy`` is the
    active version the caller read (``services.policy``) and records with the grant."""
    return rules.decide(facts, policy)
