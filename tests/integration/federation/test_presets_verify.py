"""Each preset's real token shape verifies through its issuer's discovery and matches its
rule; the same platform's other namespace, repository or branch does not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from authority.clock import FrozenClock
from authority.federation.keys import KeyLimits
from authority.federation.model import Preset
from authority.federation.rules import parse_rule
from authority.federation.verify import WorkloadVerifier
from tests.federation_issuers import NOW, TestIssuer, serving_issuers


@pytest.fixture
async def verifier() -> AsyncIterator[WorkloadVerifier]:
    verifier = WorkloadVerifier(limits=KeyLimits(fetch_timeout=2.0), clock=FrozenClock(NOW))
    yield verifier
    await verifier.aclose()


async def test_github_workload_matches_its_repository_and_branch(
    verifier: WorkloadVerifier,
) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()
        rule = parse_rule(
            {
                "domain_id": domain.id,
                "claims": {"repository": "octo-org/octo-repo", "ref": "refs/heads/main"},
            },
            domain,
        )
        identity = await verifier.verify(domain, github.github_token(), NOW)
        assert identity.subject == "repo:octo-org/octo-repo:environment:prod"
        assert identity.claims["repository"] == "octo-org/octo-repo"
        assert identity.claims["environment"] == "prod"
        assert "head_ref" not in identity.claims
        assert identity.token_id is not None
        assert rule.matches(identity)
        other_repo = await verifier.verify(domain, github.github_token("octo-org/other-repo"), NOW)
        assert not rule.matches(other_repo)
        other_branch = await verifier.verify(
            domain, github.github_token(ref="refs/heads/feature"), NOW
        )
        assert not rule.matches(other_branch)
