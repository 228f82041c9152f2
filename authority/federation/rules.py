"""Identity rules as an administrator writes them, checked before one is kept.

``parse_rule`` turns the JSON object of an agent's identity rule into an
``IdentityRule``, or refuses it in a fixed sentence (``Refused``) that names the field
and never repeats what was sent. A rule must narrow its domain: it names the subject or
at least one claim, since a rule of the domain alone would let any workload of the
platform be the agent, and a rule of wildcards only (``*``, ``*/**``) is refused for
the same reason. Given the domain, a claim the domain's identities never carry is
refused too: such a rule could never match, which is a mistake to say at once.

GitHub's and GitLab's issuers are shared: every repository's workflow (every project's
pipeline) of anyone can mint a token for any audience. A rule of such a domain must
name whose workloads it means: for GitHub a ``repository`` or ``repository_owner``
(or their ids, which a deleted and re-registered name does not get back) or a subject
``repo:<owner>/...``, for GitLab a ``project_path`` or ``namespace_path`` (or
``project_id``, ``namespace_id``) or a subject ``project_path:<group>/...``, each with
the owner part written out, no wildcard in it. ``ref``, ``event_name`` or an
environment alone would match anyone's workflow on that branch or event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from authority.federation.model import IdentityRule, Preset, TrustDomain
from authority.federation.patterns import PatternError, check_pattern
from authority.federation.presets import identity_claims
from authority.management.field_errors import Refused

#: Most claims one rule may name.
MAX_RULE_CLAIMS = 16
_FIELDS = frozenset({"domain_id", "subject", "claims"})
_CLAIM_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_DOMAIN_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
#: For a shared issuer's preset: (claims pinned whole, claims pinned by their first
#: "/" segment, the subject's prefix before the owner).
_OWNERS: dict[Preset, tuple[frozenset[str], frozenset[str], str]] = {
    Preset.GITHUB: (
        frozenset({"repository_owner", "repository_id", "repository_owner_id"}),
        frozenset({"repository"}),
        "repo:",
    ),
    Preset.GITLAB: (
        frozenset({"project_id", "namespace_id"}),
        frozenset({"project_path", "namespace_path"}),
        "project_path:",
    ),
}


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
    values = [*claims.values(), *([subject] if subject is not None else [])]
    if all(_wildcards_only(v) for v in values):
        raise Refused(
            "An identity rule must write out at least one value: a rule of wildcards "
            "only matches every workload of the trust domain."
        )
    if (
        domain is not None
        and domain.preset in _OWNERS
        and not _owner_pinned(domain.preset, subject, claims)
    ):
        raise Refused(_OWNER_SENTENCE[domain.preset])
    return IdentityRule(domain_id=domain_id, subject=subject, claims=claims)


_OWNER_SENTENCE = {
    Preset.GITHUB: "A rule of a GitHub trust domain must name the repository or its owner "
    "(repository, repository_owner, repository_id or repository_owner_id, or a subject "
    "repo:<owner>/...) with the owner written out: GitHub signs tokens for every "
    "repository's workflows, anyone's.",
    Preset.GITLAB: "A rule of a GitLab trust domain must name the project or its group "
    "(project_path, namespace_path, project_id or namespace_id, or a subject "
    "project_path:<group>/...) with the group written out: GitLab signs tokens for every "
    "project's pipelines, anyone's.",
}


def _wildcards_only(pattern: str) -> bool:
    """Whether a pattern holds nothing but wildcards and separators (``*``, ``*/**``)."""
    head = pattern.removesuffix("/**")
    return not head.replace("*", "").replace("/", "").replace(":", "")


def _literal(text: str) -> bool:
    return bool(text) and "*" not in text


def _owner_pinned(preset: Preset, subject: str | None, claims: Mapping[str, str]) -> bool:
    """Whether the rule names whose repository (project) its workloads run in."""
    whole, by_owner, prefix = _OWNERS[preset]
    for name, value in claims.items():
        if name in whole and _literal(value):
            return True
        owner, slash, _ = value.partition("/")
        if name in by_owner and slash and _literal(owner):
            return True
    if subject is not None and subject.startswith(prefix):
        owner, slash, _ = subject[len(prefix) :].partition("/")
        return bool(slash) and _literal(owner) and ":" not in owner
    return False


def rule_document(rule: IdentityRule) -> dict[str, object]:
    """The JSON object of a rule, as ``parse_rule`` reads it back."""
    document: dict[str, object] = {"domain_id": rule.domain_id, "claims": dict(rule.claims)}
    if rule.subject is not None:
        document["subject"] = rule.subject
    return document
