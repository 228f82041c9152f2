"""Agents: owners register their own; another owner's agent does not exist for them."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import update

from authority.context import Services
from authority.storage.schema import agents

from .conftest import Keys, dump, ed25519_jwk, jwks, p256_jwk


async def test_owner_creates_reads_updates_retires(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    keyset = jwks(ed25519_jwk("a1", alg="EdDSA"))
    response = await client.post(
        "/v1/agents",
        json={"name": "triage", "description": "Bug triage", "autonomy_level": 2, "jwks": keyset},
        headers=owner.headers,
    )
    assert response.status_code == 201
    agent = response.json()
    assert response.headers["Location"] == f"/v1/agents/{agent['id']}"
    assert agent["owner_id"] == owner.id
    assert agent["status"] == "active"
    assert agent["autonomy_level"] == 2
    assert agent["jwks"] == keyset
    assert agent["id"].startswith("agt_")

    assert (await client.get(f"/v1/agents/{agent['id']}", headers=owner.headers)).json() == agent

    new_keys = jwks(ed25519_jwk("a1"), p256_jwk("a2"))
    patched = await client.patch(
        f"/v1/agents/{agent['id']}",
        json={"description": None, "autonomy_level": 0, "jwks": new_keys},
        headers=owner.headers,
    )
    assert patched.status_code == 200
    body = patched.json()
    assert body["description"] is None
    assert body["autonomy_level"] == 0
    assert body["jwks"] == new_keys
    assert body["name"] == "triage"

    retired = await client.delete(f"/v1/agents/{agent['id']}", headers=owner.headers)
    assert retired.status_code == 200
    assert retired.json()["status"] == "retired"
    again = await client.patch(
        f"/v1/agents/{agent['id']}", json={"autonomy_level": 1}, headers=owner.headers
    )
    assert again.status_code == 409


async def test_admin_creates_for_a_named_owner(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    missing = await client.post(
        "/v1/agents", json={"name": "a", "jwks": jwks()}, headers=keys.admin
    )
    assert missing.status_code == 400
    assert "owner_id" in missing.json()["error_description"]
    unknown = await client.post(
        "/v1/agents",
        json={"name": "a", "owner_id": "own_" + "0" * 32, "jwks": jwks()},
        headers=keys.admin,
    )
    assert unknown.status_code == 404
    created = await client.post(
        "/v1/agents", json={"name": "a", "owner_id": owner.id, "jwks": jwks()}, headers=keys.admin
    )
    assert created.status_code == 201
    assert created.json()["owner_id"] == owner.id


async def test_another_owners_agent_is_404_everywhere(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    bobs = await keys.agent(bob, "bobs agent")
    alices = await keys.agent(alice, "alices agent")
    before = await dump(services)
    for method, body in (
        ("GET", None),
        ("PATCH", {"name": "stolen"}),
        ("PATCH", {"jwks": jwks()}),
        ("DELETE", None),
    ):
        response = await client.request(
            method, f"/v1/agents/{bobs['id']}", json=body, headers=alice.headers
        )
        assert response.status_code == 404, method
        assert response.json() == {"error": "not_found", "error_description": "No such agent."}
    # The answer is the same as for an id that does not exist at all.
    nowhere = await client.get("/v1/agents/agt_" + "0" * 32, headers=alice.headers)
    assert nowhere.json() == {"error": "not_found", "error_description": "No such agent."}
    assert await dump(services) == before

    listed = (await client.get("/v1/agents", headers=alice.headers)).json()
    assert [item["id"] for item in listed["items"]] == [alices["id"]]
    # Admin and auditor see both.
    for headers in (keys.admin, keys.auditor):
        listed = (await client.get("/v1/agents", headers=headers)).json()
        assert {item["id"] for item in listed["items"]} == {alices["id"], bobs["id"]}


async def test_owner_cannot_create_for_another_owner(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    before = await dump(services)
    response = await client.post(
        "/v1/agents", json={"name": "a", "owner_id": bob.id, "jwks": jwks()}, headers=alice.headers
    )
    assert response.status_code == 404
    assert await dump(services) == before
    own = await client.post(
        "/v1/agents",
        json={"name": "a", "owner_id": alice.id, "jwks": jwks()},
        headers=alice.headers,
    )
    assert own.status_code == 201


async def test_names_are_unique_per_owner(client: httpx.AsyncClient, keys: Keys) -> None:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    first = await keys.agent(alice, "worker")
    dup = await client.post(
        "/v1/agents", json={"name": "worker", "jwks": jwks()}, headers=alice.headers
    )
    assert dup.status_code == 409
    assert dup.json()["error"] == "conflict"
    await keys.agent(bob, "worker")  # another owner may use the name
    other = await keys.agent(alice, "other")
    renamed = await client.patch(
        f"/v1/agents/{other['id']}", json={"name": "worker"}, headers=alice.headers
    )
    assert renamed.status_code == 409
    same = await client.patch(
        f"/v1/agents/{first['id']}", json={"name": "worker"}, headers=alice.headers
    )
    assert same.status_code == 200


async def test_status_and_owner_are_not_editable(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    agent = await keys.agent(alice)
    async with services.engine.begin() as conn:
        await conn.execute(
            update(agents)
            .where(agents.c.id == agent["id"])
            .values(status="quarantined", status_reason="suspicious")
        )
    before = await dump(services)
    for headers in (alice.headers, keys.admin):
        for body in (
            {"status": "active"},
            {"status_reason": None},
            {"owner_id": bob.id},
            {"id": "agt_other"},
            {"created_at": 0},
        ):
            response = await client.patch(f"/v1/agents/{agent['id']}", json=body, headers=headers)
            assert response.status_code == 400, body
            assert response.json()["error_description"] == (
                "The body has an unknown field; the allowed fields are name, description, "
                "autonomy_level, jwks, identity_rules and require_key_and_workload."
            )
    assert await dump(services) == before
    # Editing something else leaves the quarantine in place.
    patched = await client.patch(
        f"/v1/agents/{agent['id']}", json={"description": "x"}, headers=alice.headers
    )
    assert patched.json()["status"] == "quarantined"
    assert patched.json()["status_reason"] == "suspicious"


async def test_invalid_jwks_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    owner = await keys.owner()
    agent = await keys.agent(owner)
    before = await dump(services)
    private = {**ed25519_jwk(), "d": "AAAA"}
    bodies: list[dict[str, Any]] = [
        {"jwks": {"keys": [private]}},
        {"jwks": {"keys": []}},
        {"jwks": []},
    ]
    for body in bodies:
        patched = await client.patch(f"/v1/agents/{agent['id']}", json=body, headers=owner.headers)
        assert patched.status_code == 400
        assert patched.json()["error"] == "invalid_request"
        created = await client.post(
            "/v1/agents", json={"name": "new", **body}, headers=owner.headers
        )
        assert created.status_code == 400
    assert await dump(services) == before


async def test_autonomy_level_is_bounded(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    for level in (-1, 4, "1", 1.0, True, None):
        response = await client.post(
            "/v1/agents",
            json={"name": "a", "autonomy_level": level, "jwks": jwks()},
            headers=owner.headers,
        )
        assert response.status_code == 400, level
        assert response.json()["error_description"] == (
            "The autonomy_level field must be an integer between 0 and 3."
        )


async def test_paging_agents(client: httpx.AsyncClient, keys: Keys) -> None:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    mine = [(await keys.agent(alice, f"a{i}"))["id"] for i in range(5)]
    await keys.agent(bob, "b")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/agents", params=params, headers=alice.headers)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(mine)
    assert len(seen) == len(set(seen))
