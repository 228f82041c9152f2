"""/v1/trust-domains and agents' identity rules: who may change them, what is refused,
and the ledger entry of every change."""

from __future__ import annotations

from typing import Any

from authority.federation.model import Preset
from tests.federation_issuers import TestIssuer
from tests.integration.federation.workload_support import entries
from tests.support import AgentKey, World

ISSUER = "https://token.actions.githubusercontent.com"


def github_domain(**extra: Any) -> dict[str, Any]:
    return {
        "name": "github-actions",
        "preset": "github",
        "issuer": ISSUER,
        "audience": "https://authority.example.test",
        "key_source": "discovery",
        "key_location": ISSUER + "/.well-known/openid-configuration",
        **extra,
    }


async def test_only_admins_manage_trust_domains_anyone_reads_them(world: World) -> None:
    client = world.client
    refused = await client.post(
        "/v1/trust-domains", json=github_domain(), headers=world.auth(world.owner_key)
    )
    assert refused.status_code == 403, refused.text
    created = await world.post("/v1/trust-domains", world.admin, github_domain())
    patch = await client.patch(
        f"/v1/trust-domains/{created['id']}",
        json={"status": "disabled"},
        headers=world.auth(world.owner_key),
    )
    assert patch.status_code == 403, patch.text
    listed = await client.get("/v1/trust-domains", headers=world.auth(world.owner_key))
    assert listed.status_code == 200
    assert [d["id"] for d in listed.json()["items"]] == [created["id"]]
    one = await client.get(
        f"/v1/trust-domains/{created['id']}", headers=world.auth(world.owner_key)
    )
    assert one.json()["status"] == "active"
    assert (
        await client.get("/v1/trust-domains/td_nope", headers=world.auth(world.admin))
    ).status_code == 404


async def test_bad_input_is_400_without_echo_and_changes_nothing(world: World) -> None:
    bad = [
        github_domain(issuer="https://evil.example/<script>x</script> y"),
        github_domain(key_location="http://keys.evil.example/<b>jwks</b>"),
        github_domain(preset="<preset>"),
        github_domain(key_source="static_jwks"),  # no JWKS held
        github_domain(claim_mapping={"<x>": "repository"}),
        github_domain(claim_mapping={"job_workflow_ref": "repository"}),  # a preset's name
        github_domain(
            key_source="static_jwks",
            key_location=None,
            static_jwks={"keys": [{"kty": "oct", "k": "<secret>"}]},
        ),
        {**github_domain(), "unknown": "<field>"},
    ]
    for body in bad:
        response = await world.client.post(
            "/v1/trust-domains", json=body, headers=world.auth(world.admin)
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == "invalid_request"
        for marker in ("<script>", "<b>", "<preset>", "<x>", "<secret>", "<field>", "evil"):
            assert marker not in response.text
    assert not await entries(world, "registry_changed") or all(
        e["object_type"] != "trust_domain" for e in await entries(world, "registry_changed")
    )


async def test_every_change_is_a_ledger_entry_without_the_keys_themselves(world: World) -> None:
    issuer = TestIssuer("static", Preset.OIDC)
    body = {
        "name": "entra",
        "preset": "oidc",
        "issuer": "https://login.example.test/tenant/v2.0",
        "audience": "api://authority",
        "key_source": "static_jwks",
        "static_jwks": issuer.jwks(),
        "claim_mapping": {"azp": "app"},
    }
    created = await world.post("/v1/trust-domains", world.admin, body)
    assert created["version"] == 1
    domain_id = created["id"]
    response = await world.client.patch(
        f"/v1/trust-domains/{domain_id}",
        json={"status": "disabled", "audience": "api://authority-2"},
        headers=world.auth(world.admin),
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    # The same values again change nothing and record nothing.
    same = await world.client.patch(
        f"/v1/trust-domains/{domain_id}",
        json={"status": "disabled"},
        headers=world.auth(world.admin),
    )
    assert same.json()["version"] == 2
    recorded = [
        e for e in await entries(world, "registry_changed") if e["object_type"] == "trust_domain"
    ]
    assert [e["change"] for e in recorded] == ["created", "updated"]
    first, second = recorded
    assert first["version"] == 3
    assert first["changes"]["claim_mapping"] == {"azp": "app"}
    assert "static_jwks" not in first["changes"]
    assert [k["kid"] for k in first["keys"]] == [issuer.signing.kid]
    assert second["changes"] == {"status": "disabled", "audience": "api://authority-2"}


async def test_identity_rules_are_checked_shown_and_recorded(world: World) -> None:
    domain = await world.post("/v1/trust-domains", world.admin, github_domain())
    rule = {
        "domain_id": domain["id"],
        "claims": {"repository": "acme/web", "ref": "refs/heads/main"},
    }

    async def create(body: dict[str, Any]) -> Any:
        return await world.client.post(
            "/v1/agents", json={"name": "ci", **body}, headers=world.auth(world.owner_key)
        )

    unknown = await create({"identity_rules": [{**rule, "domain_id": "td_unknown"}]})
    assert unknown.status_code == 400
    assert "names a trust domain that does not exist" in unknown.json()["error_description"]
    never = await create({"identity_rules": [{**rule, "claims": {"<namespace>": "x"}}]})
    assert never.status_code == 400 and "<namespace>" not in never.text
    carried = await create({"identity_rules": [{**rule, "claims": {"namespace": "x"}}]})
    assert carried.status_code == 400, carried.text  # not a claim of GitHub's tokens
    assert (await create({"identity_rules": [{"domain_id": domain["id"]}]})).status_code == 400
    both_unflagged = await create({"identity_rules": [rule], "jwks": AgentKey().jwks()})
    assert both_unflagged.status_code == 400
    assert (await create({})).status_code == 400  # neither keys nor rules

    agent = await world.post(
        "/v1/agents", world.owner_key, {"name": "ci", "identity_rules": [rule]}
    )
    assert agent["jwks"] is None
    assert agent["identity_rules"] == [
        {"domain_id": domain["id"], "subject": None, "claims": rule["claims"]}
    ]
    assert agent["require_key_and_workload"] is False
    changed = await world.client.patch(
        f"/v1/agents/{agent['id']}",
        json={"identity_rules": [{**rule, "claims": {"repository": "acme/api"}}]},
        headers=world.auth(world.owner_key),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["identity_rules"][0]["claims"] == {"repository": "acme/api"}
    emptied = await world.client.patch(
        f"/v1/agents/{agent['id']}",
        json={"identity_rules": []},
        headers=world.auth(world.owner_key),
    )
    assert emptied.status_code == 400  # it would have no proof left
    recorded = [
        e
        for e in await entries(world, "registry_changed")
        if e["object_type"] == "agent" and e["object_id"] == agent["id"]
    ]
    assert [e["change"] for e in recorded] == ["created", "updated"]
    assert recorded[0]["changes"]["identity_rules"][0]["claims"] == rule["claims"]
    assert recorded[1]["changes"]["identity_rules"][0]["claims"] == {"repository": "acme/api"}
