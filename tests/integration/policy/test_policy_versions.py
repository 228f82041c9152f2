"""Policy versions through the API: each change a ledger entry, each decision naming the
version that made it, rollback, admins only, and a bad text refused without an echo."""

from __future__ import annotations

from typing import Any

from authority.management.api_keys import issue_operator_key
from authority.policy.versions import digest
from tests.support import World

from .support import FORBID_CREATE, counts, entries, set_policy


async def test_a_change_is_a_ledger_entry_and_the_next_decisions_name_it(world: World) -> None:
    # No version stored: the built-in default decides, as version 0.
    assert (await world.exchange()).status_code == 200
    assert (await entries(world, "grant"))[-1]["policy_version"] == 0

    created = await set_policy(world, FORBID_CREATE, comment="no new issues in web")
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["version"], body["active"], body["digest"]) == (1, True, digest(FORBID_CREATE))
    assert created.headers["location"] == "/v1/policies/1"
    [changed] = await entries(world, "policy_changed")
    assert changed["policy_version"] == 1 and changed["change"] == "created"
    assert changed["digest"] == digest(FORBID_CREATE)
    assert changed["author"] == changed["actor"] == body["author"]
    assert changed["author"].startswith("key_")
    assert "text" not in changed and "forbid" not in str(changed)

    refused = await world.exchange()
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    last = (await entries(world, "grant"))[-1]
    assert (last["decision"], last["reason"], last["policy_version"]) == (
        "denied",
        "policy_denied",
        1,
    )

    assert (await set_policy(world, "")).status_code == 201
    assert (await world.exchange()).status_code == 200
    assert (await entries(world, "grant"))[-1]["policy_version"] == 2

    # A rollback: version 1 again, its own entry, and the next decision on it.
    rolled = await world.client.post("/v1/policies/1/activate", headers=world.auth(world.admin))
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["version"], rolled.json()["active"]) == (1, True)
    activated = (await entries(world, "policy_changed"))[-1]
    assert (activated["change"], activated["policy_version"], activated["previous_version"]) == (
        "activated",
        1,
        2,
    )
    assert (await world.exchange()).status_code == 400
    assert (await entries(world, "grant"))[-1]["policy_version"] == 1


async def test_the_versions_are_listed_and_read(world: World) -> None:
    await set_policy(world, FORBID_CREATE, comment="first")
    await set_policy(world, "", comment="second")
    admin = world.auth(world.admin)
    listed = (await world.client.get("/v1/policies", headers=admin)).json()["items"]
    assert [(v["version"], v["active"], v["comment"]) for v in listed] == [
        (2, True, "second"),
        (1, False, "first"),
    ]
    assert all("text" not in v and v["created_at"] and v["digest"] for v in listed)
    one = (await world.client.get("/v1/policies/1", headers=admin)).json()
    assert (one["text"], one["active"]) == (FORBID_CREATE, False)
    active = (await world.client.get("/v1/policies/active", headers=admin)).json()
    assert (active["version"], active["text"]) == (2, "")
    for missing in ("/v1/policies/3", "/v1/policies/0", "/v1/policies/x", "/v1/policies/01"):
        assert (await world.client.get(missing, headers=admin)).status_code == 404, missing
    unknown = await world.client.post("/v1/policies/9/activate", headers=admin)
    assert unknown.status_code == 404


async def test_only_admins_change_the_policy(world: World) -> None:
    auditor = (await issue_operator_key(world.services, "auditor", "audits")).secret
    before = await counts(world)
    for key in (world.owner_key, auditor):
        assert (await set_policy(world, FORBID_CREATE, key=key)).status_code == 403
        activate = await world.client.post("/v1/policies/1/activate", headers=world.auth(key))
        assert activate.status_code == 403
    # The owner does not read it either; the auditor does.
    for path in ("/v1/policies", "/v1/policies/active"):
        owner = await world.client.get(path, headers=world.auth(world.owner_key))
        assert owner.status_code == 403
        assert (await world.client.get(path, headers=world.auth(auditor))).status_code == 200
    assert (await world.client.post("/v1/policies", json={"text": ""})).status_code == 401
    assert await counts(world) == before
    assert await world.services.policy_store.versions() == []


async def test_a_text_that_is_not_cedar_is_a_400_that_does_not_echo_it(world: World) -> None:
    before = await counts(world)
    texts = [
        "permit(principal, action, resource);\n"
        "forbid(principal, action, resource) when { hunter2secret };",
        'forbid(principal, action, resource) when { context.a == "hunter2secret" ',
        "forbid(principal, action, resource) when { context.x.hunter2secret() };",
        "hunter2secret",
        'forbid(principal, action == Agent::"hunter2secret", resource);',
    ]
    for text in texts:
        response = await set_policy(world, text, comment="c")
        assert response.status_code == 400, text
        body: dict[str, Any] = response.json()
        assert body["error"] == "invalid_request"
        assert body["error_description"].startswith("The policy text is not valid Cedar ")
        assert "hunter2secret" not in response.text
    first = (await set_policy(world, texts[0])).json()["error_description"]
    assert "at line 2" in first
    assert "at its end" in (await set_policy(world, texts[1])).json()["error_description"]
    assert (await set_policy(world, "permit(principal, action, resource);\x00")).status_code == 400
    assert await counts(world) == before
    assert await world.services.policy_store.versions() == []
