"""Identity rules as an administrator writes them, checked before one is kept.

``parse_rule`` turns the JSON object of an agent's identity rule into an
``IdentityRule``, or refuses it in a fixed sentence (``Refused``) that names the field
and never repeats what was sent. A rule must narrow its domain: it names the subject or
at least one claim, since a rule of the domain alone would let any workload of the
platform be the agent. Given the domain, a claim the domain's identities never carry
is refused too: such a rule could never match, which is a mistake to say at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from authority.federation.model import IdentityRule, TrustDomain
from authority.federation.patterns import PatternError, check_pattern
from authority.federation.presets import identity_claims
from authority.management.field_errors import Refused

#: Most claims one rule may name.
MAX_RULE_CLAIMS = 16
_FIELDS = frozenset({"domain_id", "subject", "claims"})
_CLAIM_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_DOMAIN_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def _pattern(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise Refused(f"The {where} must be a string.")
    try:
        check_pattern(value)
    except PatternError as exc:
        raise Refused(f"The {where} {exc}.") from None
    return value


def parse_rule(data: object, domain: TrustDomain | None = None) -> IdentityRule:
    """The rule ``data`` describes, checked; with ``domain``, checked against it too."""
    if not isinstance(data, Mapping):
        raise Refused("An identity rule must be an object.")
    if any(not isinstance(k, str) or k not in _FIELDS for k in data):
        raise Refused(
            "An identity rule has an unknown field; the allowed fields are "
            "domain_id, subject and claims."
        )
    domain_id = data.get("domain_id")
    if not isinstance(domain_id, str) or not _DOMAIN_ID.fullmatch(domain_id):
        raise Refused("The domain_id field must name a trust domain.")
    if domain is not None and domain.id != domain_id:
        raise Refused("The domain_id field must name the rule's trust domain.")
    subject = data.get("subject")
    if subject is not None:
        subject = _pattern("subject field", subject)
    raw_claims = data.get("claims", {})
    if not isinstance(raw_claims, Mapping):
        raise Refused("The claims field must be an object of claim names to patterns.")
    if len(raw_claims) > MAX_RULE_CLAIMS:
        raise Refused(f"The claims field may name at most {MAX_RULE_CLAIMS} claims.")
    known = identity_claims(domain) if domain is not None else None
    claims: dict[str, str] = {}
    for name, value in raw_claims.items():
        if not isinstance(name, str) or not _CLAIM_NAME.fullmatch(name):
            raise Refused("A claim name must be 1 to 64 letters, digits or the characters _ . : -.")
        if known is not None and name not in known:
            raise Refused(
                "The claims field names a claim the trust domain's identities never "
                "carry; they carry " + (", ".join(sorted(known)) or "no claims") + "."
            )
        claims[name] = _pattern("claims field's pattern", value)
    if subject is None and not claims:
        raise Refused("An identity rule must name the subject or at least one claim.")
    return IdentityRule(domain_id=domain_id, subject=subject, claims=claims)


def rule_document(rule: IdentityRule) -> dict[str, object]:
    """The JSON object of a rule, as ``parse_rule`` reads it back."""
    document: dict[str, object] = {"domain_id": rule.domain_id, "claims": dict(rule.claims)}
    if rule.subject is not None:
        document["subject"] = rule.subject
    return document
