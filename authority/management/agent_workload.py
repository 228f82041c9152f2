"""An agent's workload identity: the identity rules its platform token must match.

An agent proves who it is with its own key (an attestation JWT), with a token of the
platform it runs on (a SPIFFE JWT-SVID, a Kubernetes service-account token, a CI
provider's OIDC token; ``grants.workload_auth``), or with both. What it was registered
with decides which:

- keys only: the attestation, as ever;
- identity rules only: the platform token, matched against the rules;
- keys and rules: both, always (``require_key_and_workload`` must say so, so that
  nobody registers an agent believing either proof would do: a delegation is bound to
  one key, and a platform token alone cannot prove possession of it).

A rule names a trust domain (it must exist: unknown ids are refused), and patterns for
the subject and for claims by the names the domain maps them to (``federation.model``).
Stored on the agent as ``{"rules": [...], "require_key_and_workload": bool}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from authority.context import Services
from authority.errors import InvalidRequest
from authority.federation.model import IdentityRule
from authority.federation.rules import parse_rule, rule_document
from authority.management.field_errors import Refused

from .inputs import Body
from .trust_domains import domain_of

MAX_RULES = 20
MAX_CLAIMS = 20
UNKNOWN_DOMAIN = "The identity_rules field names a trust domain that does not exist."
NEEDS_A_PROOF = "The agent needs keys (jwks), identity rules, or both."
BOTH_NEED_FLAG = (
    "An agent with both keys and identity rules must set require_key_and_workload: "
    "it then proves itself with both."
)
FLAG_NEEDS_BOTH = "The require_key_and_workload field needs both keys and identity rules."

DomainId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
ClaimName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
Pattern = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class IdentityRuleBody(Body):
    domain_id: DomainId
    subject: Pattern | None = Field(
        None, description="The token's sub: exact, or * within a segment, /** for any rest."
    )
    claims: dict[ClaimName, Pattern] = Field(
        default_factory=dict,
        max_length=MAX_CLAIMS,
        description="Claims by their mapped names (repository, ref, namespace, ...), "
        "each matched as subject is.",
    )


IdentityRules = Annotated[list[IdentityRuleBody], Field(max_length=MAX_RULES)]


def stored(rules: Sequence[IdentityRuleBody], require_both: bool) -> dict[str, Any] | None:
    """The column's document; None for an agent without rules."""
    if not rules:
        return None
    return {
        "rules": [
            {"domain_id": r.domain_id, "subject": r.subject, "claims": dict(r.claims)}
            for r in rules
        ],
        "require_key_and_workload": require_both,
    }


def check_shape(has_keys: bool, workload: Mapping[str, Any] | None, require_both: bool) -> None:
    """Which proofs the agent will be asked for must be one of the three this allows."""
    has_rules = workload is not None
    if not has_keys and not has_rules:
        raise InvalidRequest(NEEDS_A_PROOF)
    if require_both and not (has_keys and has_rules):
        raise InvalidRequest(FLAG_NEEDS_BOTH)
    if has_keys and has_rules and not require_both:
        raise InvalidRequest(BOTH_NEED_FLAG)


async def check_domains(services: Services, workload: Mapping[str, Any] | None) -> None:
    """Every domain a rule names is registered (active or disabled): else 400."""
    if workload is None:
        return
    wanted = {rule["domain_id"] for rule in workload["rules"]}
    found = {row.id: domain_of(row) for row in await services.trust_domain_store.many(wanted)}
    if len(found) != len(wanted):
        raise InvalidRequest(UNKNOWN_DOMAIN)
    for rule in workload["rules"]:
        # Each pattern checked, and each claim one the domain's identities can carry.
        try:
            parse_rule(rule_document(_rule(rule)), found[rule["domain_id"]])
        except Refused as exc:
            raise InvalidRequest(str(exc)) from None


def _rule(rule: Mapping[str, Any]) -> IdentityRule:
    return IdentityRule(
        domain_id=rule["domain_id"], subject=rule.get("subject"), claims=rule.get("claims", {})
    )


def rules_of(workload: Mapping[str, Any] | None) -> tuple[IdentityRule, ...]:
    """The stored document's rules as the federation's values."""
    if workload is None:
        return ()
    return tuple(_rule(rule) for rule in workload.get("rules", ()))


def requires_both(workload: Mapping[str, Any] | None) -> bool:
    return bool(workload is not None and workload.get("require_key_and_workload"))


def view(workload: Mapping[str, Any] | None) -> tuple[list[dict[str, Any]], bool]:
    """What the agent resource shows: its rules and whether both proofs are required."""
    if workload is None:
        return [], False
    return [dict(rule) for rule in workload["rules"]], requires_both(workload)
