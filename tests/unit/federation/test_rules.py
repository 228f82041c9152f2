"""Identity rules: checked when made, matched by domain, subject and every claim."""

from __future__ import annotations

from typing import Any

import pytest

from authority.federation.model import (
    IdentityRule,
    KeySource,
    Preset,
    TrustDomain,
    WorkloadIdentity,
)
from authority.federation.rules import parse_rule, rule_document
from authority.management.field_errors import Refused

GITHUB = TrustDomain(
    id="td-gh",
    name="github",
    preset=Preset.GITHUB,
    issuer="https://token.actions.githubusercontent.com",
    audience="https://authority.example.test",
    key_source=KeySource.DISCOVERY,
    key_location=None,
    static_jwks=None,
    claim_mapping={"workflow": "workflow_name"},
)


def _identity(
    domain_id: str = "td-gh", subject: str = "repo:o/r:ref:refs/heads/main", **claims: str
) -> WorkloadIdentity:
    return WorkloadIdentity(domain_id, GITHUB.issuer, subject, claims, None, 0)


def test_every_part_must_hold() -> None:
    rule = parse_rule(
        {
            "domain_id": "td-gh",
            "subject": "repo:o/*:ref:refs/heads/main",
            "claims": {"repository": "o/r", "environment": "prod"},
        }
    )
    assert rule.matches(_identity(repository="o/r", environment="prod"))
    assert not rule.matches(_identity(repository="o/r", environment="dev"))
    assert not rule.matches(_identity(repository="o/r"))  # a missing claim never matches
    assert not rule.matches(
        _identity(subject="repo:o/r:ref:refs/heads/dev", repository="o/r", environment="prod")
    )
    assert not rule.matches(_identity("td-other", repository="o/r", environment="prod"))


def test_a_missing_claim_never_matches_even_a_star() -> None:
    rule = IdentityRule("td-gh", claims={"environment": "*"})
    assert not rule.matches(_identity())
    assert rule.matches(_identity(environment=""))


def test_round_trip() -> None:
    rule = parse_rule({"domain_id": "td-gh", "claims": {"repository": "o/*"}}, GITHUB)
    assert parse_rule(rule_document(rule), GITHUB) == rule
    with_subject = parse_rule({"domain_id": "td-gh", "subject": "repo:o/r:ref:refs/heads/**"})
    assert parse_rule(rule_document(with_subject)) == with_subject


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        ([], "must be an object"),
        ({"domain_id": "td-gh"}, "the subject or at least one claim"),
        ({"domain_id": "td-gh", "claims": {}}, "the subject or at least one claim"),
        ({"claims": {"repository": "o/r"}}, "domain_id field"),
        ({"domain_id": "", "claims": {"repository": "o/r"}}, "domain_id field"),
        ({"domain_id": "td-gh", "extra": 1, "subject": "x"}, "unknown field"),
        ({"domain_id": "td-gh", "subject": 5}, "subject field must be a string"),
        ({"domain_id": "td-gh", "subject": "a/**/b"}, "subject field may use **"),
        ({"domain_id": "td-gh", "claims": ["repository"]}, "claims field must be an object"),
        ({"domain_id": "td-gh", "claims": {"repository": 1}}, "must be a string"),
        ({"domain_id": "td-gh", "claims": {"repo sitory": "x"}}, "claim name"),
        ({"domain_id": "td-gh", "claims": {"repository": ""}}, "non-empty"),
        ({"domain_id": "td-gh", "claims": {f"c{i}": "x" for i in range(17)}}, "at most 16"),
    ],
)
def test_bad_rules_are_refused_without_echo(data: Any, sentence: str) -> None:
    with pytest.raises(Refused, match=sentence.replace("*", r"\*")):
        parse_rule(data)


def test_against_its_domain() -> None:
    with pytest.raises(Refused, match="never carry"):
        parse_rule({"domain_id": "td-gh", "claims": {"namespace": "x"}}, GITHUB)
    with pytest.raises(Refused, match="rule's trust domain"):
        parse_rule({"domain_id": "td-other", "subject": "x"}, GITHUB)
    # The mapped name is a claim the domain's identities carry.
    rule = {"workflow_name": "deploy", "repository_owner": "o"}
    assert parse_rule({"domain_id": "td-gh", "claims": rule}, GITHUB)


GITLAB = TrustDomain(
    id="td-gl",
    name="gitlab",
    preset=Preset.GITLAB,
    issuer="https://gitlab.com",
    audience="https://authority.example.test",
    key_source=KeySource.DISCOVERY,
    key_location=None,
    static_jwks=None,
)
OIDC = TrustDomain(
    id="td-oidc",
    name="okta",
    preset=Preset.OIDC,
    issuer="https://okta.example.test",
    audience="https://authority.example.test",
    key_source=KeySource.DISCOVERY,
    key_location=None,
    static_jwks=None,
)


@pytest.mark.parametrize(
    ("domain", "rule"),
    [
        # Anyone's workflow can mint a token with any audience from a shared issuer.
        (GITHUB, {"claims": {"ref": "refs/heads/main"}}),
        (GITHUB, {"claims": {"event_name": "push"}}),
        (GITHUB, {"claims": {"repository": "*/**"}}),
        (GITHUB, {"claims": {"repository": "*/app"}}),
        (GITHUB, {"claims": {"repository_owner": "octo-*"}}),
        (GITHUB, {"claims": {"job_workflow_ref": "octo-org/ci/.github/workflows/x.yml@*"}}),
        (GITHUB, {"subject": "repo:*/**"}),
        (GITHUB, {"subject": "repo:*/app:ref:refs/heads/main"}),
        (GITHUB, {"subject": "*:octo-org/app"}),
        (GITLAB, {"claims": {"ref": "main", "ref_protected": "true"}}),
        (GITLAB, {"claims": {"project_path": "*/app"}}),
        (GITLAB, {"subject": "project_path:*/**"}),
    ],
)
def test_a_shared_issuers_rule_must_name_the_owner(
    domain: TrustDomain, rule: dict[str, Any]
) -> None:
    with pytest.raises(Refused, match=r"written out|wildcards only"):
        parse_rule({"domain_id": domain.id, **rule}, domain)


@pytest.mark.parametrize(
    ("domain", "rule"),
    [
        (GITHUB, {"claims": {"repository": "octo-org/app", "ref": "refs/heads/main"}}),
        (GITHUB, {"claims": {"repository": "octo-org/*"}}),
        (GITHUB, {"claims": {"repository_owner": "octo-org"}}),
        (GITHUB, {"claims": {"repository_id": "123456", "event_name": "push"}}),
        (GITHUB, {"claims": {"repository_owner_id": "9919"}}),
        (GITHUB, {"subject": "repo:octo-org/*:ref:refs/heads/main"}),
        (GITLAB, {"claims": {"project_path": "my-group/app"}}),
        (GITLAB, {"claims": {"namespace_path": "my-group/**"}}),
        (GITLAB, {"claims": {"project_id": "42"}}),
        (GITLAB, {"subject": "project_path:my-group/app:ref_type:branch:ref:main"}),
        (OIDC, {"subject": "00000000-0000-0000-0000-00000000abcd"}),
    ],
)
def test_rules_that_name_the_owner_pass(domain: TrustDomain, rule: dict[str, Any]) -> None:
    assert parse_rule({"domain_id": domain.id, **rule}, domain)


@pytest.mark.parametrize(
    "rule",
    [
        {"subject": "*"},
        {"subject": "*:*"},
        {"subject": "*/**"},
        {"claims": {"a": "*", "b": "*/*"}},
        {"subject": "*", "claims": {"a": "*:*/**"}},
    ],
)
def test_a_rule_of_wildcards_only_is_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(Refused, match="wildcards only"):
        parse_rule({"domain_id": "td-oidc", **rule})
