"""Resource servers: secrets shown once and stored hashed, rotation, private_key_jwt keys."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from authority.context import Services
from authority.storage.schema import resource_servers

from .conftest import Keys, dump, ed25519_jwk, jwks


async def stored_hash(services: Services, server_id: str) -> str | None:
    async with services.engine.connect() as conn:
        row = (
            await conn.execute(
                select(resource_servers.c.secret_hash).where(resource_servers.c.id == server_id)
            )
        ).first()
    assert row is not None
    value: str | None = row.secret_hash
    return value


async def test_secret_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    response = await client.post(
        "/v1/resource-servers",
        json={"name": "GitHub", "audience": "https://api.github.example"},
        headers=keys.admin,
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    server = response.json()
    assert response.headers["Location"] == f"/v1/resource-servers/{server['id']}"
    assert server["client_id"] == server["id"]
    assert server["auth_method"] == "client_secret_basic"
    secret = server["client_secret"]
    assert secret.startswith("rss_")
    assert await stored_hash(services, server["id"]) == services.hasher.hash(secret)

    read = (await client.get(f"/v1/resource-servers/{server['id']}", headers=keys.admin)).json()
    assert "client_secret" not in read
    assert "secret_hash" not in read
    listed = (await client.get("/v1/resource-servers", headers=keys.admin)).json()["items"]
    assert all("client_secret" not in item and "secret_hash" not in item for item in listed)


async def test_rotation_replaces_the_secret(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    server = await keys.server()
    old = server["client_secret"]
    response = await client.post(f"/v1/resource-servers/{server['id']}/secret", headers=keys.admin)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    new = response.json()["client_secret"]
    assert new != old
    stored = await stored_hash(services, server["id"])
    assert stored is not None
    assert services.hasher.verify(new, stored)
    assert not services.hasher.verify(old, stored)


async def test_private_key_jwt_takes_a_jwks_and_has_no_secret(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    keyset = jwks(ed25519_jwk("rs1"))
    missing = await client.post(
        "/v1/resource-servers",
        json={"name": "s", "audience": "https://s.example", "auth_method": "private_key_jwt"},
        headers=keys.admin,
    )
    assert missing.status_code == 400
    response = await client.post(
        "/v1/resource-servers",
        json={
            "name": "s",
            "audience": "https://s.example",
            "auth_method": "private_key_jwt",
            "jwks": keyset,
        },
        headers=keys.admin,
    )
    assert response.status_code == 201
    server = response.json()
    assert "client_secret" not in server
    assert server["jwks"] == keyset
    assert await stored_hash(services, server["id"]) is None
    rotate = await client.post(f"/v1/resource-servers/{server['id']}/secret", headers=keys.admin)
    assert rotate.status_code == 409
    new_keys = jwks(ed25519_jwk("rs2"))
    patched = await client.patch(
        f"/v1/resource-servers/{server['id']}", json={"jwks": new_keys}, headers=keys.admin
    )
    assert patched.json()["jwks"] == new_keys
    bad = await client.patch(
        f"/v1/resource-servers/{server['id']}",
        json={"jwks": {"keys": [{**ed25519_jwk(), "d": "AAAA"}]}},
        headers=keys.admin,
    )
    assert bad.status_code == 400


async def test_secret_methods_take_no_jwks(client: httpx.AsyncClient, keys: Keys) -> None:
    create = await client.post(
        "/v1/resource-servers",
        json={"name": "s", "audience": "https://s.example", "jwks": jwks()},
        headers=keys.admin,
    )
    assert create.status_code == 400
    server = await keys.server()
    patch = await client.patch(
        f"/v1/resource-servers/{server['id']}", json={"jwks": jwks()}, headers=keys.admin
    )
    assert patch.status_code == 400


@pytest.mark.parametrize(
    "audience",
    [
        "github.example",
        "ftp://github.example",
        "https://",
        "https://github.example/#frag",
        "https://github.example/?q=1",
        "https://user:pass@github.example/",
        "https://github.example:99999/",
        "https://github.example/a b",
        "https://github.example/\u00e9",
        "https://" + "a" * 2050,
        "",
    ],
)
async def test_audience_must_be_an_absolute_http_uri(
    client: httpx.AsyncClient, keys: Keys, audience: str
) -> None:
    response = await client.post(
        "/v1/resource-servers", json={"name": "s", "audience": audience}, headers=keys.admin
    )
    assert response.status_code == 400
    assert response.json()["error_description"].startswith("The audience field ")


async def test_name_and_audience_are_unique(client: httpx.AsyncClient, keys: Keys) -> None:
    server = await keys.server("one")
    same_name = await client.post(
        "/v1/resource-servers",
        json={"name": "one", "audience": "https://other.example"},
        headers=keys.admin,
    )
    assert same_name.status_code == 409
    same_audience = await client.post(
        "/v1/resource-servers",
        json={"name": "other", "audience": server["audience"]},
        headers=keys.admin,
    )
    assert same_audience.status_code == 409


async def test_audience_and_method_are_fixed(client: httpx.AsyncClient, keys: Keys) -> None:
    server = await keys.server()
    for body in ({"audience": "https://x.example"}, {"auth_method": "client_secret_post"}):
        response = await client.patch(
            f"/v1/resource-servers/{server['id']}", json=body, headers=keys.admin
        )
        assert response.status_code == 400


async def test_retire_refused_while_hosting_active_tools(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    server = await keys.server()
    tool = await keys.tool(server["id"])
    before = await dump(services)
    refused = await client.delete(f"/v1/resource-servers/{server['id']}", headers=keys.admin)
    assert refused.status_code == 409
    assert await dump(services) == before
    await client.delete(f"/v1/tools/{tool['id']}", headers=keys.admin)
    retired = await client.delete(f"/v1/resource-servers/{server['id']}", headers=keys.admin)
    assert retired.status_code == 200
    assert retired.json()["status"] == "retired"
    # A retired server keeps no working secret and gets no new one.
    assert await stored_hash(services, server["id"]) is None
    rotate = await client.post(f"/v1/resource-servers/{server['id']}/secret", headers=keys.admin)
    assert rotate.status_code == 409
