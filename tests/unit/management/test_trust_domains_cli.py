"""``--identity-rule`` as the CLI reads it, and the bodies its commands send."""

from __future__ import annotations

import pytest

from authority.cli import build_parser
from authority.cli_api import CliError
from authority.management.trust_domains_cli import parse_rule


def test_a_rule_names_its_domain_subject_and_claims() -> None:
    rule = parse_rule("domain=td_1,sub=repo:acme/web:*,repository=acme/web,ref=refs/heads/main")
    assert rule == {
        "domain_id": "td_1",
        "subject": "repo:acme/web:*",
        "claims": {"repository": "acme/web", "ref": "refs/heads/main"},
    }
    # A value may hold "=": only the first one separates.
    assert parse_rule("domain=td_1,app=a=b")["claims"] == {"app": "a=b"}


@pytest.mark.parametrize(
    "text", ["", "sub=x", "domain=td_1,ref", "domain=td_1,=x", "domain=td_1,a=1,a=2", "domain="]
)
def test_malformed_rules_are_refused(text: str) -> None:
    with pytest.raises(CliError):
        parse_rule(text)


def test_the_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "trust-domains",
            "create",
            "--name",
            "gh",
            "--preset",
            "github",
            "--issuer",
            "https://token.actions.githubusercontent.com",
            "--audience",
            "https://authority.example",
            "--map",
            "azp=app",
        ]
    )
    assert args.preset == "github" and args.map == ["azp=app"]
    args = parser.parse_args(
        ["agents", "create", "--name", "ci", "--identity-rule", "domain=td_1,ref=main"]
    )
    assert args.identity_rule == ["domain=td_1,ref=main"]
    assert parser.parse_args(["trust-domains", "disable", "td_1"]).id == "td_1"
