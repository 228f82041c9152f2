"""Bearer API keys (RFC 6750) and roles: who may call the management API at all."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from authority.context import Services
from authority.storage.schema import api_keys

from .conftest import Keys, bearer, jwks


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge


async def test_no_key_is_401_with_a_challenge_without_error_code(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.get("/v1/agents")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    # RFC 6750 §3.1: no error code when no credentials were sent.
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="authority"'


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ak_doesnotexist",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer two words",
        "Bearer " + "a" * 300,
        "ak_nobearer",
    ],
)
async def test_bad_keys_are_401(client: httpx.AsyncClient, keys: Keys, header: str) -> None:
    assert_invalid_token(await client.get("/v1/agents", headers={"Authorization": header}))


async def test_scheme_is_case_insensitive(client: httpx.AsyncClient, keys: Keys) -> None:
    token = keys.admin["Authorization"].split(" ", 1)[1]
    response = await client.get("/v1/me", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


async def test_key_in_the_query_is_not_accepted(client: httpx.AsyncClient, keys: Keys) -> None:
    token = keys.admin["Authorization"].split(" ", 1)[1]
    response = await client.get("/v1/me", params={"access_token": token})
    assert response.status_code == 401


async def test_revoked_key_is_401(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    me = (await client.get("/v1/me", headers=owner.headers)).json()
    assert me["role"] == "owner"
    assert me["owner_id"] == owner.id
    revoked = await client.delete(
        f"/v1/owners/{owner.id}/api-keys/{me['key_id']}", headers=owner.headers
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert_invalid_token(await client.get("/v1/me", headers=owner.headers))


async def test_keys_of_a_retired_owner_stop_working(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    assert (await client.delete(f"/v1/owners/{owner.id}", headers=keys.admin)).status_code == 200
    assert_invalid_token(await client.get("/v1/me", headers=owner.headers))


async def test_only_the_hash_of_a_key_is_stored(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    owner = await keys.owner()
    async with services.engine.connect() as conn:
        rows = (await conn.execute(select(api_keys))).all()
    stored = " ".join(str(value) for row in rows for value in row)
    assert owner.key not in stored
    assert services.hasher.hash(owner.key) in stored


async def test_api_key_shape(keys: Keys) -> None:
    owner = await keys.owner()
    prefix, secret = owner.key.split("_", 1)
    assert prefix == "ak"
    assert len(secret) >= 43  # 256 bits, base64url


async def test_insufficient_scope_is_403_with_a_challenge(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    owner = await keys.owner()
    response = await client.post("/v1/owners", json={"name": "x"}, headers=owner.headers)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


async def test_auditor_reads_everything(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    agent = await keys.agent(owner)
    server = await keys.server()
    tool = await keys.tool(server["id"])
    for path in (
        "/v1/owners",
        f"/v1/owners/{owner.id}",
        f"/v1/owners/{owner.id}/api-keys",
        "/v1/api-keys",
        "/v1/agents",
        f"/v1/agents/{agent['id']}",
        "/v1/tools",
        f"/v1/tools/{tool['id']}",
        "/v1/resource-servers",
        f"/v1/resource-servers/{server['id']}",
    ):
        response = await client.get(path, headers=keys.auditor)
        assert response.status_code == 200, path


async def test_auditor_never_writes(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    agent = await keys.agent(owner)
    server = await keys.server()
    tool = await keys.tool(server["id"])
    me = (await client.get("/v1/me", headers=keys.auditor)).json()
    writes = [
        ("POST", "/v1/owners", {"name": "n"}),
        ("PATCH", f"/v1/owners/{owner.id}", {"name": "n"}),
        ("DELETE", f"/v1/owners/{owner.id}", None),
        ("POST", f"/v1/owners/{owner.id}/api-keys", {}),
        ("DELETE", f"/v1/owners/{owner.id}/api-keys/{me['key_id']}", None),
        ("POST", "/v1/api-keys", {"role": "admin"}),
        ("DELETE", f"/v1/api-keys/{me['key_id']}", None),
        ("POST", "/v1/agents", {"name": "n", "owner_id": owner.id, "jwks": jwks()}),
        ("PATCH", f"/v1/agents/{agent['id']}", {"name": "n"}),
        ("DELETE", f"/v1/agents/{agent['id']}", None),
        ("POST", "/v1/tools", {"name": "a.b"}),
        ("PATCH", f"/v1/tools/{tool['id']}", {"risk_tier": 0}),
        ("DELETE", f"/v1/tools/{tool['id']}", None),
        ("POST", "/v1/resource-servers", {"name": "n", "audience": "https://n.example"}),
        ("PATCH", f"/v1/resource-servers/{server['id']}", {"name": "n"}),
        ("POST", f"/v1/resource-servers/{server['id']}/secret", None),
        ("DELETE", f"/v1/resource-servers/{server['id']}", None),
    ]
    for method, path, body in writes:
        response = await client.request(method, path, json=body, headers=keys.auditor)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"] == "insufficient_scope"


async def test_owner_may_not_touch_the_registries(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    server = await keys.server()
    tool = await keys.tool(server["id"])
    for method, path, body in [
        ("GET", "/v1/owners", None),
        ("GET", "/v1/api-keys", None),
        ("POST", "/v1/api-keys", {"role": "admin"}),
        ("POST", "/v1/tools", {"name": "a.b"}),
        ("PATCH", f"/v1/tools/{tool['id']}", {"risk_tier": 0}),
        ("DELETE", f"/v1/tools/{tool['id']}", None),
        ("POST", "/v1/resource-servers", {"name": "n", "audience": "https://n.example"}),
        ("POST", f"/v1/resource-servers/{server['id']}/secret", None),
        ("DELETE", f"/v1/resource-servers/{server['id']}", None),
        ("DELETE", f"/v1/owners/{owner.id}", None),
    ]:
        response = await client.request(method, path, json=body, headers=owner.headers)
        assert response.status_code == 403, (method, path)


async def test_owner_reads_the_registries(client: httpx.AsyncClient, keys: Keys) -> None:
    owner = await keys.owner()
    server = await keys.server()
    await keys.tool(server["id"])
    for path in ("/v1/tools", "/v1/resource-servers", f"/v1/resource-servers/{server['id']}"):
        assert (await client.get(path, headers=owner.headers)).status_code == 200


async def test_admin_creates_operator_keys(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(
        "/v1/api-keys", json={"role": "auditor", "label": "ci"}, headers=keys.admin
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"] == f"/v1/api-keys/{body['id']}"
    assert response.headers["Cache-Control"] == "no-store"
    auditor = bearer(body["api_key"])
    assert (await client.get("/v1/me", headers=auditor)).json()["role"] == "auditor"
    # Listing never shows the secret or its hash.
    listed = (await client.get("/v1/api-keys", headers=keys.admin)).json()["items"]
    assert all(
        set(item) == {"id", "role", "owner_id", "label", "created_at", "revoked_at"}
        for item in listed
    )
    assert (
        await client.delete(f"/v1/api-keys/{body['id']}", headers=keys.admin)
    ).status_code == 200
    assert (await client.get("/v1/me", headers=auditor)).status_code == 401


async def test_owner_keys_are_not_made_through_the_operator_route(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.post("/v1/api-keys", json={"role": "owner"}, headers=keys.admin)
    assert response.status_code == 400
