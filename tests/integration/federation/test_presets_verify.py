"""Each preset's real token shape verifies through its issuer's keys and matches its
rule; the same platform's other namespace, repository or branch does not."""

from __future__ import annotations

import pytest

from authority.federation.model import KeySource, Preset
from authority.federation.rules import parse_rule
from authority.federation.verify import WorkloadRejected, WorkloadVerifier
from tests.federation_issuers import NOW, TestIssuer, serving_issuers


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
        assert identity.issuer == github.issuer
        assert identity.claims["repository"] == "octo-org/octo-repo"
        assert identity.claims["environment"] == "prod"
        assert identity.claims["job_workflow_ref"].startswith("octo-org/octo-repo/.github/")
        assert "head_ref" not in identity.claims  # empty: no claim
        assert "workflow" not in identity.claims  # not a kept claim
        assert identity.token_id is not None
        assert identity.expires_at == NOW + 300
        assert rule.matches(identity)
        other_repo = await verifier.verify(domain, github.github_token("octo-org/other"), NOW)
        assert not rule.matches(other_repo)
        other_branch = await verifier.verify(
            domain, github.github_token(ref="refs/heads/feature"), NOW
        )
        assert not rule.matches(other_branch)


async def test_github_rule_by_pattern_and_environment(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()
        rule = parse_rule(
            {
                "domain_id": domain.id,
                "subject": "repo:octo-org/*:environment:prod",
                "claims": {"ref": "refs/heads/release/**"},
            }
        )
        ok = await verifier.verify(
            domain, github.github_token("octo-org/api", ref="refs/heads/release/v2/rc1"), NOW
        )
        assert rule.matches(ok)
        staging = await verifier.verify(
            domain,
            github.github_token("octo-org/api", ref="refs/heads/release/v2", environment="dev"),
            NOW,
        )
        assert not rule.matches(staging)
        no_environment = await verifier.verify(
            domain, github.github_token("octo-org/api", environment=None), NOW
        )
        assert "environment" not in no_environment.claims
        assert not rule.matches(no_environment)
        # The environment claim is required by this rule: missing never matches.
        env_rule = parse_rule(
            {"domain_id": domain.id, "claims": {"repository": "octo-org/*", "environment": "*"}}
        )
        assert not env_rule.matches(no_environment)
        assert env_rule.matches(ok)


async def test_gitlab_workload_and_its_non_string_claims(verifier: WorkloadVerifier) -> None:
    gitlab = TestIssuer("gitlab", Preset.GITLAB)
    async with serving_issuers(gitlab):
        domain = gitlab.domain(claim_mapping={"groups_direct": "groups", "runner_id": "runner"})
        rule = parse_rule(
            {
                "domain_id": domain.id,
                "claims": {
                    "project_path": "my-group/my-project",
                    "ref": "main",
                    "ref_protected": "true",
                },
            },
            domain,
        )
        identity = await verifier.verify(domain, gitlab.gitlab_token(), NOW)
        assert identity.subject == "project_path:my-group/my-project:ref_type:branch:ref:main"
        assert identity.claims["namespace_path"] == "my-group"
        assert identity.claims["runner_id"] == "1"  # an int, as a string
        assert identity.claims["runner"] == "1"
        assert "groups" not in identity.claims  # a list: dropped
        assert "user_identities" not in identity.claims
        assert rule.matches(identity)
        unprotected = await verifier.verify(domain, gitlab.gitlab_token(protected=False), NOW)
        assert not rule.matches(unprotected)
        other_project = await verifier.verify(
            domain, gitlab.gitlab_token("my-group/other-project"), NOW
        )
        assert not rule.matches(other_project)
        # A required claim of a shape a rule cannot compare refuses the token.
        with pytest.raises(WorkloadRejected, match="workload_bad_claim_namespace_path"):
            await verifier.verify(domain, gitlab.gitlab_token(namespace_path=["a", "b"]), NOW)


async def test_kubernetes_workload_matches_its_namespace_and_account(
    verifier: WorkloadVerifier,
) -> None:
    cluster = TestIssuer("cluster", Preset.KUBERNETES)
    async with serving_issuers(cluster):
        domain = cluster.domain()
        rule = parse_rule(
            {
                "domain_id": domain.id,
                "claims": {"namespace": "agents", "service_account": "planner"},
            },
            domain,
        )
        identity = await verifier.verify(domain, cluster.kubernetes_token(), NOW)
        assert identity.subject == "system:serviceaccount:agents:planner"
        assert identity.claims["pod"] == "planner-7d9f8b6c4-x2x9q"
        assert set(identity.claims) == {
            "namespace",
            "service_account",
            "service_account_uid",
            "pod",
            "pod_uid",
        }
        assert rule.matches(identity)
        other_namespace = await verifier.verify(
            domain, cluster.kubernetes_token("default", "planner"), NOW
        )
        assert not rule.matches(other_namespace)
        other_account = await verifier.verify(
            domain, cluster.kubernetes_token("agents", "builder"), NOW
        )
        assert not rule.matches(other_account)
        unbound = await verifier.verify(domain, cluster.kubernetes_token(pod=None), NOW)
        assert "pod" not in unbound.claims
        assert rule.matches(unbound)
        subject_rule = parse_rule(
            {"domain_id": domain.id, "subject": "system:serviceaccount:agents:*"}
        )
        assert subject_rule.matches(other_account)
        assert not subject_rule.matches(other_namespace)


async def test_kubernetes_subject_must_agree_with_its_claim(verifier: WorkloadVerifier) -> None:
    cluster = TestIssuer("cluster", Preset.KUBERNETES)
    async with serving_issuers(cluster):
        domain = cluster.domain(key_source=KeySource.JWKS_URI)
        forged = cluster.kubernetes_token(sub="system:serviceaccount:kube-system:admin")
        with pytest.raises(WorkloadRejected, match="workload_bad_claim_kubernetes_io"):
            await verifier.verify(domain, forged, NOW)
        legacy = cluster.mint(
            {
                "iss": cluster.issuer,
                "sub": "system:serviceaccount:agents:planner",
                "aud": "https://authority.example.test",
                "exp": NOW + 60,
                "kubernetes.io/serviceaccount/namespace": "agents",
            }
        )
        with pytest.raises(WorkloadRejected, match="workload_not_a_service_account"):
            await verifier.verify(domain, legacy, NOW)


async def test_spiffe_svid_from_a_fetched_bundle(verifier: WorkloadVerifier) -> None:
    spire = TestIssuer("spire", Preset.SPIFFE)
    async with serving_issuers(spire):
        domain = spire.domain(key_source=KeySource.SPIFFE_BUNDLE)
        assert domain.issuer == "spiffe://spire.test"
        rule = parse_rule({"domain_id": domain.id, "claims": {"path": "/ns/prod/sa/*"}}, domain)
        identity = await verifier.verify(domain, spire.spiffe_svid(), NOW)
        assert identity.subject == "spiffe://spire.test/ns/prod/sa/agent"
        assert identity.claims == {
            "spiffe_id": "spiffe://spire.test/ns/prod/sa/agent",
            "trust_domain": "spire.test",
            "path": "/ns/prod/sa/agent",
        }
        assert identity.token_id is None
        assert rule.matches(identity)
        staging = await verifier.verify(domain, spire.spiffe_svid("/ns/staging/sa/agent"), NOW)
        assert not rule.matches(staging)
        # The bundle's X.509 authority never verifies a JWT-SVID.
        x509_signed = spire.mint(
            {
                "sub": "spiffe://spire.test/ns/prod/sa/agent",
                "aud": ["https://authority.example.test"],
                "exp": NOW + 60,
            },
            key=spire.x509_key,
            headers={"kid": None},
        )
        with pytest.raises(WorkloadRejected):
            await verifier.verify(domain, x509_signed, NOW)


async def test_spiffe_ids_are_validated_and_their_trust_domain_pinned(
    verifier: WorkloadVerifier,
) -> None:
    spire = TestIssuer("spire", Preset.SPIFFE)
    domain = spire.domain(key_source=KeySource.SPIFFE_BUNDLE)  # static: not served
    for sub in (
        "spiffe://other.test/ns/prod/sa/agent",  # another trust domain, same keys
        "spiffe://spire.test",  # the trust domain itself, not a workload
        "spiffe://spire.test/ns//agent",
        "spiffe://spire.test/ns/../admin",
        "spiffe://Spire.test/ns/prod",
        "spiffe://spire.test/ns/prod/",
        "https://spire.test/ns/prod",
    ):
        token = spire.spiffe_svid(sub=sub)
        with pytest.raises(WorkloadRejected):
            await verifier.verify(domain, token, NOW)
    # A JWT-SVID that carries an iss must carry the domain's.
    with pytest.raises(WorkloadRejected, match="workload_wrong_issuer"):
        await verifier.verify(domain, spire.spiffe_svid(iss="spiffe://spire.test/x"), NOW)
    assert (await verifier.verify(domain, spire.spiffe_svid(), NOW)).subject.startswith(
        "spiffe://spire.test/"
    )


async def test_spiffe_with_a_jwt_issuer_requires_it(verifier: WorkloadVerifier) -> None:
    spire = TestIssuer("spire", Preset.SPIFFE, jwt_issuer=True)
    async with serving_issuers(spire):
        domain = spire.domain(key_source=KeySource.DISCOVERY)
        identity = await verifier.verify(domain, spire.spiffe_svid(), NOW)
        assert identity.claims["trust_domain"] == "spire.test"
        with pytest.raises(WorkloadRejected, match="workload_wrong_issuer"):
            await verifier.verify(domain, spire.spiffe_svid(iss=None), NOW)


async def test_generic_oidc_keeps_only_the_mapped_claims(verifier: WorkloadVerifier) -> None:
    entra = TestIssuer("entra", Preset.OIDC)
    async with serving_issuers(entra):
        domain = entra.domain(claim_mapping={"tid": "tenant", "appid": "app", "xms_mirid": "mi"})
        token = entra.oidc_token(
            "workload-1", tid="72f988bf", appid="a1b2", roles=["reader"], xms_mirid={"a": 1}
        )
        identity = await verifier.verify(domain, token, NOW)
        assert identity.subject == "workload-1"
        assert identity.claims == {"tenant": "72f988bf", "app": "a1b2"}
        rule = parse_rule(
            {"domain_id": domain.id, "subject": "workload-1", "claims": {"tenant": "72f988bf"}},
            domain,
        )
        assert rule.matches(identity)
        other = await verifier.verify(domain, entra.oidc_token("workload-1", tid="other"), NOW)
        assert not rule.matches(other)


async def test_a_mapping_never_overrides_a_preset_claim(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(
        key_source=KeySource.STATIC_JWKS, claim_mapping={"workflow": "repository"}
    )
    identity = await verifier.verify(domain, github.github_token(), NOW)
    assert identity.claims["repository"] == "octo-org/octo-repo"
