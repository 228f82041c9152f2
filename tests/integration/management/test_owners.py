"""Owners and their API keys: admin creates and retires, an owner sees only itself."""

from __future__ import annotations

import httpx

from .conftest import Keys, bearer, jwks


async def test_create_read_update_retire(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(
        "/v1/owners", json={"name": "Ada", "email": "ada@example.org"}, headers=keys.admin
    )
    assert response.status_code == 201
    owner = response.json()
    assert response.headers["Location"] == f"/v1/owners/{owner['id']}"
    assert owner["status"] == "active"
    assert owner["email"] == "ada@example.org"
    assert owner["id"].startswith("own_")

    read = await client.get(f"/v1/owners/{owner['id']}", headers=keys.admin)
    assert read.json() == owner

    patched = await client.patch(
        f"/v1/owners/{owner['id']}", json={"email": None}, headers=keys.admin
    )
    assert patched.status_code == 200
    assert patched.json()["email"] is None
    assert patched.json()["name"] == "Ada"

    retired = await client.delete(f"/v1/owners/{owner['id']}", headers=keys.admin)
    assert retired.status_code == 200
    assert retired.json()["status"] == "retired"
    # The row stays, and retiring twice changes nothing.
    again = await client.delete(f"/v1/owners/{owner['id']}", headers=keys.admin)
    assert again.json() == retired.json()
    assert (await client.get(f"/v1/owners/{owner['id']}", headers=keys.admin)).status_code == 200


async def test_retired_owner_cannot_change(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    await client.delete(f"/v1/owners/{owner.id}", headers=keys.admin)
    patch = await client.patch(f"/v1/owners/{owner.id}", json={"name": "x"}, headers=keys.admin)
    assert patch.status_code == 409
    key = await client.post(f"/v1/owners/{owner.id}/api-keys", json={}, headers=keys.admin)
    assert key.status_code == 409
    agent = await client.post(
        "/v1/agents",
        json={"name": "a", "owner_id": owner.id, "jwks": jwks()},
        headers=keys.admin,
    )
    assert agent.status_code == 409


async def test_retiring_revokes_the_owners_keys(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    await client.delete(f"/v1/owners/{owner.id}", headers=keys.admin)
    listed = await client.get(f"/v1/owners/{owner.id}/api-keys", headers=keys.admin)
    assert all(item["revoked_at"] is not None for item in listed.json()["items"])


async def test_duplicate_name_is_409(client: httpx.AsyncClient, keys: Keys) -> None:
    await keys.owner("Grace")
    response = await client.post("/v1/owners", json={"name": "Grace"}, headers=keys.admin)
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    other = await keys.owner("Linus")
    renamed = await client.patch(
        f"/v1/owners/{other.id}", json={"name": "Grace"}, headers=keys.admin
    )
    assert renamed.status_code == 409


async def test_owner_reads_and_renames_itself_only(client: httpx.AsyncClient, keys: Keys) -> None:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    assert (await client.get(f"/v1/owners/{alice.id}", headers=alice.headers)).status_code == 200
    renamed = await client.patch(
        f"/v1/owners/{alice.id}", json={"name": "Alice"}, headers=alice.headers
    )
    assert renamed.json()["name"] == "Alice"
    for method, body in (("GET", None), ("PATCH", {"name": "mallory"})):
        response = await client.request(
            method, f"/v1/owners/{bob.id}", json=body, headers=alice.headers
        )
        assert response.status_code == 404, method
        assert response.json()["error"] == "not_found"
    # An owner cannot list owners or retire itself.
    assert (await client.get("/v1/owners", headers=alice.headers)).status_code == 403
    assert (await client.delete(f"/v1/owners/{alice.id}", headers=alice.headers)).status_code == 403


async def test_owner_manages_its_own_api_keys(client: httpx.AsyncClient, keys: Keys) -> None:
    alice = await keys.owner("alice")
    created = await client.post(
        f"/v1/owners/{alice.id}/api-keys", json={"label": "laptop"}, headers=alice.headers
    )
    assert created.status_code == 201
    body = created.json()
    assert body["role"] == "owner"
    assert body["owner_id"] == alice.id
    assert body["label"] == "laptop"
    assert created.headers["Location"] == f"/v1/owners/{alice.id}/api-keys/{body['id']}"
    assert created.headers["Cache-Control"] == "no-store"
    second = bearer(body["api_key"])
    assert (await client.get("/v1/me", headers=second)).json()["key_id"] == body["id"]

    listed = (await client.get(f"/v1/owners/{alice.id}/api-keys", headers=alice.headers)).json()
    assert {item["id"] for item in listed["items"]} >= {body["id"]}
    for item in listed["items"]:
        assert "api_key" not in item
        assert "key_hash" not in item
    read = await client.get(f"/v1/owners/{alice.id}/api-keys/{body['id']}", headers=alice.headers)
    assert read.json() == {k: v for k, v in body.items() if k != "api_key"}

    # A body is optional when there is nothing to say.
    bare = await client.post(f"/v1/owners/{alice.id}/api-keys", headers=alice.headers)
    assert bare.status_code == 201
    assert bare.json()["label"] == ""

    revoked = await client.delete(
        f"/v1/owners/{alice.id}/api-keys/{body['id']}", headers=alice.headers
    )
    assert revoked.status_code == 200
    assert (await client.get("/v1/me", headers=second)).status_code == 401


async def test_owner_cannot_touch_another_owners_keys(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    bob_key = (await client.get("/v1/me", headers=bob.headers)).json()["key_id"]
    for method, path in (
        ("POST", f"/v1/owners/{bob.id}/api-keys"),
        ("GET", f"/v1/owners/{bob.id}/api-keys"),
        ("GET", f"/v1/owners/{bob.id}/api-keys/{bob_key}"),
        ("DELETE", f"/v1/owners/{bob.id}/api-keys/{bob_key}"),
        # Bob's key under Alice's own path is not hers either.
        ("GET", f"/v1/owners/{alice.id}/api-keys/{bob_key}"),
        ("DELETE", f"/v1/owners/{alice.id}/api-keys/{bob_key}"),
    ):
        response = await client.request(method, path, json={}, headers=alice.headers)
        assert response.status_code == 404, (method, path)
    assert (await client.get("/v1/me", headers=bob.headers)).status_code == 200


async def test_owner_key_route_does_not_reach_operator_keys(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    alice = await keys.owner("alice")
    admin_key = (await client.get("/v1/me", headers=keys.admin)).json()["key_id"]
    response = await client.delete(
        f"/v1/owners/{alice.id}/api-keys/{admin_key}", headers=keys.admin
    )
    assert response.status_code == 404
    assert (await client.get("/v1/me", headers=keys.admin)).status_code == 200


async def test_paging_owners(client: httpx.AsyncClient, keys: Keys) -> None:
    created = [(await keys.owner(f"owner {i}")).id for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/owners", params=params, headers=keys.admin)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(created)
    assert len(seen) == len(set(seen))
