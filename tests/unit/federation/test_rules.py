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
    assert parse_rule({"domain_id": "td-gh", "claims": {"workflow_name": "deploy"}}, GITHUB)
