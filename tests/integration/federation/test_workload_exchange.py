"""The token exchange for agents that prove themselves with their platform's token.

Each preset's issuer runs on loopback (tests/federation_issuers.py); trust domains,
agents and delegations are made over the API, exchanges over HTTP, as users do.
"""

from __future__ import annotations

import base64
from typing import Any

import jwt
import pytest

from authority.federation.model import Preset
from authority.policy.active import ActivePolicy
from authority.policy.cedar import CedarPolicy
from tests.federation_issuers import TestIssuer, serving_issuers
from tests.integration.federation.workload_support import (
    add_domain,
    entries,
    exchange,
    now_of,
    refused,
    workload_agent,
)
from tests.support import AgentKey, World

NOT_MATCHED = "matches none of the agent's rules"
INVALID = "not a valid token of a trust domain"


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# Per preset: a rule, a token that matches it, one that does not.
CASES: dict[Preset, tuple[dict[str, Any], Any, Any]] = {
    Preset.GITHUB: (
        {"claims": {"repository": "acme/web", "ref": "refs/heads/main"}},
        lambda i, now: i.github_token("acme/web", now=now),
        lambda i, now: i.github_token("acme/other", now=now),
    ),
    Preset.KUBERNETES: (
        {"claims": {"namespace": "agents", "service_account": "planner"}},
        lambda i, now: i.kubernetes_token("agents", now=now),
        lambda i, now: i.kubernetes_token("default", now=now),
    ),
    Preset.GITLAB: (
        {"claims": {"project_path": "my-group/*", "ref": "main"}},
        lambda i, now: i.gitlab_token(now=now),
        lambda i, now: i.gitlab_token(ref="feature", now=now),
    ),
    Preset.SPIFFE: (
        {"subject": "spiffe://spiffe.test/ns/prod/**"},
        lambda i, now: i.spiffe_svid("/ns/prod/sa/agent", now=now),
        lambda i, now: i.spiffe_svid("/ns/dev/sa/agent", now=now),
    ),
    Preset.OIDC: (
        {"subject": "app-42"},
        lambda i, now: i.oidc_token("app-42", now=now),
        lambda i, now: i.oidc_token("app-43", now=now),
    ),
}


@pytest.mark.parametrize("preset", list(CASES))
async def test_each_preset_matching_workload_gets_a_token_another_is_refused(
    world: World, preset: Preset
) -> None:
    rule, matching, other = CASES[preset]
    issuer = TestIssuer(preset.value, preset)
    async with serving_issuers(issuer):
        domain_id = await add_domain(world, issuer)
        agent_id, credential = await workload_agent(world, [{"domain_id": domain_id, **rule}])
        now = now_of(world)
        response = await exchange(world, agent_id, credential, matching(issuer, now))
        assert response.status_code == 200, response.text
        act = _claims(response.json()["access_token"])["act"]
        assert act["sub"] == agent_id
        assert act["workload"]["domain_id"] == domain_id
        assert act["workload"]["iss"] == issuer.issuer
        refused(await exchange(world, agent_id, credential, other(issuer, now)), NOT_MATCHED)


async def test_token_and_ledger_carry_the_workload_and_a_replay_is_refused(world: World) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain_id = await add_domain(world, github)
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        agent_id, credential = await workload_agent(world, [rule])
        token = github.github_token("acme/web", now=now_of(world))
        response = await exchange(world, agent_id, credential, token)
        assert response.status_code == 200, response.text
        claims = _claims(response.json()["access_token"])
        assert claims["client_id"] == agent_id
        workload = claims["act"]["workload"]
        assert workload["sub"] == "repo:acme/web:environment:prod"
        assert workload["claims"]["repository"] == "acme/web"
        assert workload["claims"]["ref"] == "refs/heads/main"
        issued = [e for e in await entries(world, "grant") if e["decision"] == "issued"]
        assert issued[-1]["version"] == 3
        assert issued[-1]["workload"] == {
            "domain_id": domain_id,
            "issuer": github.issuer,
            "subject": "repo:acme/web:environment:prod",
            "claims": {"repository": "acme/web"},
        }
        # The same platform token again: its jti is spent.
        again = await exchange(world, agent_id, credential, token)
        assert again.status_code == 400, again.text
        denied = (await entries(world, "grant"))[-1]
        assert denied["decision"] == "denied"
        assert denied["reason"] == "attestation_replayed"


async def test_another_domains_token_expired_or_wrong_audience_is_refused(world: World) -> None:
    ours, theirs = TestIssuer("ours", Preset.GITHUB), TestIssuer("theirs", Preset.GITHUB)
    async with serving_issuers(ours, theirs):
        domain_id = await add_domain(world, ours)
        await add_domain(world, theirs)  # trusted, but not named by the agent's rules
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        agent_id, credential = await workload_agent(world, [rule])
        now = now_of(world)
        refused(
            await exchange(world, agent_id, credential, theirs.github_token("acme/web", now=now)),
            INVALID,
        )
        expired = ours.github_token("acme/web", now=now - 3600)
        refused(await exchange(world, agent_id, credential, expired), INVALID)
        elsewhere = ours.github_token("acme/web", now=now, aud="https://other.example.test")
        refused(await exchange(world, agent_id, credential, elsewhere), INVALID)
        assert all(e["decision"] == "denied" for e in await entries(world, "grant"))


async def test_a_disabled_domain_verifies_nothing(world: World) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain_id = await add_domain(world, github)
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        agent_id, credential = await workload_agent(world, [rule])
        response = await world.client.patch(
            f"/v1/trust-domains/{domain_id}",
            json={"status": "disabled"},
            headers=world.auth(world.admin),
        )
        assert response.status_code == 200, response.text
        token = github.github_token("acme/web", now=now_of(world))
        refused(await exchange(world, agent_id, credential, token), INVALID)


async def test_issuer_down_is_503_for_its_domain_only(world: World) -> None:
    down, up = TestIssuer("down", Preset.KUBERNETES), TestIssuer("up", Preset.GITHUB)
    async with serving_issuers(down, up):
        down_id = await add_domain(world, down)
        up_id = await add_domain(world, up)
        k8s_agent, k8s_credential = await workload_agent(
            world, [{"domain_id": down_id, "claims": {"namespace": "agents"}}]
        )
        ci_agent, ci_credential = await workload_agent(
            world, [{"domain_id": up_id, "claims": {"repository": "acme/web"}}]
        )
        now = now_of(world)
        await down.stop()
        response = await exchange(world, k8s_agent, k8s_credential, down.kubernetes_token(now=now))
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "temporarily_unavailable"
        other = await exchange(world, ci_agent, ci_credential, up.github_token("acme/web", now=now))
        assert other.status_code == 200, other.text
        assert not [e for e in await entries(world, "grant") if e.get("agent_id") == k8s_agent]


async def test_an_agent_that_requires_both_is_refused_with_one_proof(world: World) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    key = AgentKey()
    async with serving_issuers(github):
        domain_id = await add_domain(world, github)
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        agent_id, credential = await workload_agent(world, [rule], key=key)
        now = now_of(world)
        only_token = await exchange(
            world, agent_id, credential, github.github_token("acme/web", now=now)
        )
        refused(only_token, "also send an attestation")
        only_key = await exchange(
            world, agent_id, credential, None, attestation=key.attestation(agent_id, now)
        )
        refused(only_key, "also send its workload token", status=400)
        assert only_key.json()["error"] == "invalid_client"
        wrong = await exchange(
            world,
            agent_id,
            credential,
            github.github_token("acme/other", now=now),
            attestation=key.attestation(agent_id, now),
        )
        refused(wrong, NOT_MATCHED)
        both = await exchange(
            world,
            agent_id,
            credential,
            github.github_token("acme/web", now=now),
            attestation=key.attestation(agent_id, now),
        )
        assert both.status_code == 200, both.text
        claims = _claims(both.json()["access_token"])
        assert claims.get("cnf", True)
        assert claims["act"]["workload"]["claims"]["repository"] == "acme/web"


async def test_a_second_platform_token_replayed_with_a_new_attestation_is_refused(
    world: World,
) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    key = AgentKey()
    async with serving_issuers(github):
        domain_id = await add_domain(world, github)
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        agent_id, credential = await workload_agent(world, [rule], key=key)
        now = now_of(world)
        token = github.github_token("acme/web", now=now)
        first = await exchange(
            world, agent_id, credential, token, attestation=key.attestation(agent_id, now)
        )
        assert first.status_code == 200, first.text
        again = await exchange(
            world, agent_id, credential, token, attestation=key.attestation(agent_id, now)
        )
        refused(again, "workload token has already been used")


ORIGIN_POLICY = """
@id("deploy-only-from-main")
forbid(principal, action, resource)
  when { context.tool like "deploy.*" &&
         !(context has workload && context.workload has ref &&
           context.workload.ref == "refs/heads/main") };
"""


async def test_cedar_sees_the_workload_origin(world: World) -> None:
    world.services.policy = ActivePolicy.fixed(CedarPolicy(ORIGIN_POLICY))
    await world.add_tool("deploy.web", actions=["create"])
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain_id = await add_domain(world, github)
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        agent_id, _ = await workload_agent(world, [rule])
        delegation = {
            "agent_id": agent_id,
            "intent": "deploy acme/web",
            "scope": [{"tool": "deploy.web", "resources": ["acme/*"], "actions": ["create"]}],
            "expires_in": 3600,
        }
        credential = (await world.post("/v1/delegations", world.owner_key, delegation))[
            "credential"
        ]
        now = now_of(world)
        main = github.github_token("acme/web", now=now)
        allowed = await exchange(world, agent_id, credential, main, tool="deploy.web")
        assert allowed.status_code == 200, allowed.text
        feature = github.github_token("acme/web", ref="refs/heads/feature", now=now)
        denied = await exchange(world, agent_id, credential, feature, tool="deploy.web")
        assert denied.status_code == 400, denied.text
        assert (await entries(world, "grant"))[-1]["reason"] == "policy_denied"
    # A key-attested agent has no workload: the same policy refuses its deploys.
    await world.delegate(
        scope=[{"tool": "deploy.web", "resources": ["acme/*"], "actions": ["create"]}]
    )
    refused_by_key = await world.exchange(tool="deploy.web")
    assert refused_by_key.status_code == 400, refused_by_key.text
    ordinary = await world.delegate()
    assert ordinary["id"]
    assert (await world.exchange()).status_code == 200


async def test_an_approved_call_is_collected_with_a_fresh_platform_token(world: World) -> None:
    await world.add_tool("deploy.run", actions=["run"], risk=3)
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain_id = await add_domain(world, github)
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        agent_id, _ = await workload_agent(world, [rule])
        delegation = {
            "agent_id": agent_id,
            "intent": "deploy acme/web",
            "scope": [{"tool": "deploy.run", "resources": ["acme/*"], "actions": ["run"]}],
            "expires_in": 3600,
        }
        credential = (await world.post("/v1/delegations", world.owner_key, delegation))[
            "credential"
        ]
        now = now_of(world)
        asked = await exchange(
            world,
            agent_id,
            credential,
            github.github_token("acme/web", now=now),
            tool="deploy.run",
            action="run",
        )
        assert asked.status_code == 200, asked.text
        auth_req_id = asked.json()["auth_req_id"]
        pending = (await entries(world, "grant"))[-1]
        assert pending["decision"] == "pending" and pending["workload"]["domain_id"] == domain_id
        listed = await world.client.get("/v1/approvals", headers=world.auth(world.owner_key))
        [item] = listed.json()["items"]
        approved = await world.client.post(
            f"/v1/approvals/{item['id']}/approve", headers=world.auth(world.owner_key)
        )
        assert approved.status_code == 200, approved.text
        poll = {
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": auth_req_id,
            "client_id": agent_id,
            "actor_token": github.github_token("acme/web", now=now),
            "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
        }
        issued = await world.client.post("/oauth2/token", data=poll)
        assert issued.status_code == 200, issued.text
        act = _claims(issued.json()["access_token"])["act"]
        assert act["workload"]["claims"]["repository"] == "acme/web"
        other = {**poll, "actor_token": github.github_token("acme/other", now=now)}
        refused(await world.client.post("/oauth2/token", data=other), NOT_MATCHED)


async def test_a_workload_delegation_serves_its_agent_only(world: World) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain_id = await add_domain(world, github)
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        first, first_credential = await workload_agent(world, [rule])
        second, _ = await workload_agent(world, [rule])
        now = now_of(world)
        # Another agent's workload credential, or a key-bound one, is no delegation here.
        stolen = await exchange(
            world, second, first_credential, github.github_token("acme/web", now=now)
        )
        assert stolen.status_code == 400, stolen.text
        assert (await entries(world, "grant"))[-1]["reason"] == "delegation_wrong_agent"
        keyed = await exchange(
            world, first, world.credential, github.github_token("acme/web", now=now)
        )
        assert keyed.status_code == 400, keyed.text
        assert (await entries(world, "grant"))[-1]["reason"] in (
            "delegation_wrong_agent",
            "delegation_invalid",
        )
        # And the workload credential cannot be used with the key agent's attestation.
        attested = await world.exchange(subject_token=first_credential)
        assert attested.status_code == 400, attested.text
        ok = await exchange(
            world, first, first_credential, github.github_token("acme/web", now=now)
        )
        assert ok.status_code == 200, ok.text


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _other_ecdsa_form(token: str) -> str:
    """The same ES256 token with its signature's second valid form, (r, n - s)."""
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    other = base64.urlsafe_b64encode(r + (P256_ORDER - s).to_bytes(32, "big"))
    return f"{header}.{payload}.{other.rstrip(b'=').decode()}"


async def test_a_token_without_jti_is_spent_by_what_it_signs_not_how_it_is_written(
    world: World,
) -> None:
    spiffe = TestIssuer("spiffe", Preset.SPIFFE)
    async with serving_issuers(spiffe):
        domain_id = await add_domain(world, spiffe)
        rule = {"domain_id": domain_id, "subject": "spiffe://spiffe.test/ns/prod/**"}
        agent_id, credential = await workload_agent(world, [rule])
        token = spiffe.spiffe_svid("/ns/prod/sa/agent", now=now_of(world))
        assert "jti" not in _claims(token)
        assert (await exchange(world, agent_id, credential, token)).status_code == 200
        rewritten = _other_ecdsa_form(token)
        assert rewritten != token
        refused(await exchange(world, agent_id, credential, rewritten), "already been used")
