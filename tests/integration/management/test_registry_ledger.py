"""Changes to the registries that decide exchanges are ledger entries, and never hold a secret.

Tools, resource servers, API keys, agents' keys and owners' webhooks: each creation,
change and retirement writes one ``registry_changed`` entry in its own transaction,
naming who (the API key id), what and the new values; a refused change writes none.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from joserfc.jwk import OKPKey
from sqlalchemy import func, select

from authority.context import Services
from authority.ledger.checkpoints import ledger_keyset
from authority.ledger.verify import verify_export
from authority.management import api_keys
from authority.management.auth import principal_for_key
from authority.storage.schema import api_keys as api_keys_table
from authority.storage.schema import ledger_entries, resource_servers

from .conftest import Keys, ed25519_jwk, jwks

KIND = "registry_changed"


async def entries(services: Services) -> list[dict[str, Any]]:
    """Every registry_changed entry's body, in the order appended."""
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_entries.c.body)
            .where(ledger_entries.c.kind == KIND)
            .order_by(ledger_entries.c.id)
        )
        return [orjson.loads(body) for body in rows.scalars()]


async def ledger_size(services: Services) -> int:
    async with services.engine.connect() as conn:
        count = await conn.execute(select(func.count()).select_from(ledger_entries))
        return int(count.scalar_one())


async def key_id(services: Services, headers: dict[str, str]) -> str:
    principal = await principal_for_key(services, headers["Authorization"].split(" ", 1)[1])
    return principal.key_id


def thumbprint(jwk: dict[str, Any]) -> str:
    return OKPKey.import_key(jwk).thumbprint()


class Recorder:
    """The entries written since the last call."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.seen = 0

    async def new(self) -> list[dict[str, Any]]:
        current = await entries(self.services)
        fresh, self.seen = current[self.seen :], len(current)
        return fresh

    async def one(self) -> dict[str, Any]:
        fresh = await self.new()
        assert len(fresh) == 1, fresh
        return fresh[0]


@pytest.fixture
async def recorder(services: Services, keys: Keys) -> Recorder:
    recorder = Recorder(services)
    await recorder.new()  # the fixture's own keys
    return recorder


async def test_tool_registration_changes_and_retirement(
    client: httpx.AsyncClient, keys: Keys, services: Services, recorder: Recorder
) -> None:
    admin = await key_id(services, keys.admin)
    server = await keys.server()
    await recorder.new()
    tool = await keys.tool(server["id"], description="Open an issue", max_token_lifetime=30)
    created = await recorder.one()
    assert created["object_type"] == "tool" and created["object_id"] == tool["id"]
    assert created["change"] == "created" and created["actor"] == admin
    assert created["tool"] == "github.issues.create"
    assert created["changes"] == {
        "name": "github.issues.create",
        "description": "Open an issue",
        "resource_server_id": server["id"],
        "actions": ["create", "read"],
        "read_actions": ["read"],
        "risk_tier": 1,
        "approval_required": False,
        "single_use": False,
        "dpop_required": False,
        "max_token_lifetime": 30,
    }

    path = f"/v1/tools/{tool['id']}"
    # Approval switched on and off again: two entries, in order, each with its value.
    for value in (True, False):
        response = await client.patch(path, json={"approval_required": value}, headers=keys.admin)
        assert response.status_code == 200, response.text
        updated = await recorder.one()
        assert updated["change"] == "updated" and updated["actor"] == admin
        assert updated["changes"] == {"approval_required": value}

    response = await client.patch(
        path, json={"max_token_lifetime": None, "risk_tier": 1}, headers=keys.admin
    )
    assert response.status_code == 200
    assert (await recorder.one())["changes"] == {"max_token_lifetime": None}  # risk_tier as was

    response = await client.patch(path, json={"risk_tier": 1}, headers=keys.admin)
    assert response.status_code == 200
    assert await recorder.new() == []  # nothing changed, nothing to record

    assert (await client.delete(path, headers=keys.admin)).status_code == 200
    retired = await recorder.one()
    assert (retired["change"], retired["object_id"]) == ("retired", tool["id"])
    assert (await client.delete(path, headers=keys.admin)).status_code == 200
    assert await recorder.new() == []  # retiring twice changes nothing


async def test_resource_server_changes_name_no_secret(
    client: httpx.AsyncClient, keys: Keys, services: Services, recorder: Recorder
) -> None:
    admin = await key_id(services, keys.admin)
    response = await client.post(
        "/v1/resource-servers",
        json={"name": "github", "audience": "https://github.example/api"},
        headers=keys.admin,
    )
    assert response.status_code == 201
    server = response.json()
    created = await recorder.one()
    assert (created["object_type"], created["change"], created["actor"]) == (
        "resource_server",
        "created",
        admin,
    )
    assert created["changes"] == {
        "name": "github",
        "audience": "https://github.example/api",
        "auth_method": "client_secret_basic",
    }
    path = f"/v1/resource-servers/{server['id']}"
    assert (await client.post(f"{path}/secret", headers=keys.admin)).status_code == 200
    rotated = await recorder.one()
    assert (rotated["change"], rotated["changes"]) == ("secret_rotated", {})
    response = await client.patch(path, json={"name": "github-2"}, headers=keys.admin)
    assert response.status_code == 200
    assert (await recorder.one())["changes"] == {"name": "github-2"}
    assert (await client.delete(path, headers=keys.admin)).status_code == 200
    assert (await recorder.one())["change"] == "retired"

    first, second = ed25519_jwk("rs-1"), ed25519_jwk("rs-2")
    response = await client.post(
        "/v1/resource-servers",
        json={
            "name": "jwt",
            "audience": "https://jwt.example/api",
            "auth_method": "private_key_jwt",
            "jwks": jwks(first),
        },
        headers=keys.admin,
    )
    assert response.status_code == 201
    keyed = await recorder.one()
    assert keyed["keys"] == [{"kid": "rs-1", "thumbprint": thumbprint(first)}]
    path = f"/v1/resource-servers/{response.json()['id']}"
    response = await client.patch(path, json={"jwks": jwks(second)}, headers=keys.admin)
    assert response.status_code == 200
    replaced = await recorder.one()
    assert replaced["change"] == "updated" and replaced["changes"] == {}
    assert replaced["keys"] == [{"kid": "rs-2", "thumbprint": thumbprint(second)}]


async def test_api_key_creation_and_revocation(
    client: httpx.AsyncClient, keys: Keys, services: Services, recorder: Recorder
) -> None:
    admin = await key_id(services, keys.admin)
    response = await client.post(
        "/v1/api-keys", json={"role": "auditor", "label": "audit"}, headers=keys.admin
    )
    assert response.status_code == 201
    auditor = response.json()
    created = await recorder.one()
    assert (created["object_type"], created["object_id"], created["actor"]) == (
        "api_key",
        auditor["id"],
        admin,
    )
    assert created["changes"] == {"role": "auditor", "label": "audit"}
    assert "owner_id" not in created

    owner = await keys.owner()  # the owner's row and its first key
    made = await recorder.one()
    assert (made["change"], made["owner_id"], made["changes"]["role"]) == (
        "created",
        owner.id,
        "owner",
    )
    owner_key = await key_id(services, owner.headers)
    response = await client.delete(
        f"/v1/owners/{owner.id}/api-keys/{owner_key}", headers=owner.headers
    )
    assert response.status_code == 200
    revoked = await recorder.one()
    assert (revoked["change"], revoked["object_id"], revoked["actor"]) == (
        "revoked",
        owner_key,
        owner_key,  # the owner revoked its own key with it
    )
    assert (await client.delete(f"/v1/api-keys/{auditor['id']}", headers=keys.admin)).is_success
    assert (await recorder.one())["actor"] == admin
    assert (await client.delete(f"/v1/api-keys/{auditor['id']}", headers=keys.admin)).is_success
    assert await recorder.new() == []  # revoking twice changes nothing

    # The operator's own keys, made and revoked on the machine, are recorded as well.
    issued = await api_keys.issue_operator_key(services, "auditor", "cli", actor="operator:ada")
    await api_keys.revoke_by_id(services, issued.key.id, actor="operator:ada")
    made, gone = await recorder.new()
    assert (made["change"], made["actor"]) == ("created", "operator:ada")
    assert (gone["change"], gone["object_id"]) == ("revoked", issued.key.id)


async def test_agent_registration_and_key_changes(
    client: httpx.AsyncClient, keys: Keys, services: Services, recorder: Recorder
) -> None:
    owner = await keys.owner()
    owner_key = await key_id(services, owner.headers)
    await recorder.new()
    first, second = ed25519_jwk("a-1"), ed25519_jwk("a-2")
    response = await client.post(
        "/v1/agents",
        json={"name": "triage", "autonomy_level": 1, "jwks": jwks(first)},
        headers=owner.headers,
    )
    assert response.status_code == 201
    agent = response.json()
    created = await recorder.one()
    assert (created["object_type"], created["change"], created["actor"]) == (
        "agent",
        "created",
        owner_key,
    )
    assert (created["agent_id"], created["owner_id"]) == (agent["id"], owner.id)
    assert created["changes"] == {"name": "triage", "description": None, "autonomy_level": 1}
    assert created["keys"] == [{"kid": "a-1", "thumbprint": thumbprint(first)}]

    path = f"/v1/agents/{agent['id']}"
    response = await client.patch(path, json={"jwks": jwks(first, second)}, headers=keys.admin)
    assert response.status_code == 200
    rekeyed = await recorder.one()
    assert rekeyed["actor"] == await key_id(services, keys.admin)
    assert [k["kid"] for k in rekeyed["keys"]] == ["a-1", "a-2"]
    assert rekeyed["changes"] == {}

    response = await client.patch(path, json={"description": "bugs"}, headers=owner.headers)
    assert response.status_code == 200
    assert (await recorder.one())["changes"] == {"description": "bugs"}
    # Autonomy is recorded by its own entry kind, not twice.
    response = await client.patch(path, json={"autonomy_level": 2}, headers=owner.headers)
    assert response.status_code == 200
    assert await recorder.new() == []


async def test_webhook_registration_replacement_and_removal(
    client: httpx.AsyncClient, keys: Keys, services: Services, recorder: Recorder
) -> None:
    owner = await keys.owner()
    await recorder.new()
    url = "https://hooks.example.test/services/T000/B000/capability"
    path = f"/v1/owners/{owner.id}/webhook"
    response = await client.put(path, json={"url": url}, headers=owner.headers)
    assert response.status_code == 200, response.text
    secret = response.json()["secret"]
    created = await recorder.one()
    assert (created["object_type"], created["object_id"], created["change"]) == (
        "webhook",
        owner.id,
        "created",
    )
    assert created["actor"] == await key_id(services, owner.headers)
    assert created["changes"] == {
        "url_origin": "https://hooks.example.test",
        "url_sha256": hashlib.sha256(url.encode()).hexdigest(),
    }
    text = orjson.dumps(created).decode()
    assert secret not in text and "capability" not in text

    response = await client.put(path, json={"url": url}, headers=owner.headers)
    assert response.status_code == 200
    assert (await recorder.one())["change"] == "updated"
    assert (await client.delete(path, headers=owner.headers)).status_code == 200
    assert (await recorder.one())["change"] == "deleted"
    assert (await client.delete(path, headers=owner.headers)).status_code == 200
    assert await recorder.new() == []  # there was nothing left to delete


async def test_refused_changes_write_no_entry(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    server = await keys.server()
    tool = await keys.tool(server["id"])
    owner = await keys.owner()
    agent = await keys.agent(owner)
    retired = await keys.tool(server["id"], name="github.issues.close")
    assert (await client.delete(f"/v1/tools/{retired['id']}", headers=keys.admin)).is_success
    tool_path, agent_path = f"/v1/tools/{tool['id']}", f"/v1/agents/{agent['id']}"
    refused: list[tuple[str, str, Any, dict[str, str]]] = [
        # Bad bodies, refused before any transaction.
        ("POST", "/v1/tools", {"name": "x", "risk_tier": "1"}, keys.admin),
        ("PATCH", tool_path, {"approval_required": "no"}, keys.admin),
        ("PATCH", tool_path, {}, keys.admin),
        ("PATCH", agent_path, {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, owner.headers),
        ("POST", "/v1/api-keys", {"role": "owner"}, keys.admin),
        ("PUT", f"/v1/owners/{owner.id}/webhook", {"url": "http://x.test/"}, owner.headers),
        # Refused inside the transaction that would have appended the entry.
        ("PATCH", tool_path, {"read_actions": ["delete"]}, keys.admin),
        ("PATCH", f"/v1/tools/{retired['id']}", {"approval_required": True}, keys.admin),
        ("POST", "/v1/tools", {**_tool_body(server["id"]), "name": tool["name"]}, keys.admin),
        ("PATCH", f"/v1/resource-servers/{server['id']}", {"jwks": jwks()}, keys.admin),
        ("DELETE", f"/v1/resource-servers/{server['id']}", None, keys.admin),
        ("POST", f"/v1/resource-servers/{server['id']}/secret", None, owner.headers),
        # Not allowed at all.
        ("POST", "/v1/tools", _tool_body(server["id"]), owner.headers),
        ("PATCH", tool_path, {"approval_required": True}, keys.auditor),
    ]
    before = await ledger_size(services)
    for method, path, body, headers in refused:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code in (400, 403, 404, 409), (method, path, response.text)
        assert await ledger_size(services) == before, (method, path)


def _tool_body(server_id: str) -> dict[str, Any]:
    return {
        "name": "github.repos.delete",
        "resource_server_id": server_id,
        "actions": ["delete"],
        "risk_tier": 3,
    }


async def test_every_change_verifies_offline_and_no_secret_is_in_the_ledger(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    shown: list[str] = []
    response = await client.post(
        "/v1/resource-servers",
        json={"name": "github", "audience": "https://github.example/api"},
        headers=keys.admin,
    )
    server = response.json()
    shown.append(server["client_secret"])
    rotated = await client.post(f"/v1/resource-servers/{server['id']}/secret", headers=keys.admin)
    shown.append(rotated.json()["client_secret"])
    tool = await keys.tool(server["id"])
    await client.patch(
        f"/v1/tools/{tool['id']}", json={"approval_required": True}, headers=keys.admin
    )
    owner = await keys.owner()
    shown.append(owner.key)
    shown.append(keys.admin["Authorization"].split(" ", 1)[1])
    shown.append(keys.auditor["Authorization"].split(" ", 1)[1])
    extra = await client.post("/v1/api-keys", json={"role": "admin"}, headers=keys.admin)
    shown.append(extra.json()["api_key"])
    agent_key = ed25519_jwk("agent-1")
    await keys.agent(owner, jwks=jwks(agent_key))
    hook = await client.put(
        f"/v1/owners/{owner.id}/webhook",
        json={"url": "https://hooks.example.test/h"},
        headers=owner.headers,
    )
    shown.append(hook.json()["secret"])
    await client.delete(f"/v1/tools/{tool['id']}", headers=keys.admin)
    await client.delete(f"/v1/resource-servers/{server['id']}", headers=keys.admin)

    # Everything the database keeps in place of a secret is no more in the ledger.
    async with services.engine.connect() as conn:
        shown += [h for h in (await conn.execute(select(api_keys_table.c.key_hash))).scalars()]
        hashes = await conn.execute(select(resource_servers.c.secret_hash))
        shown += [h for h in hashes.scalars() if h is not None]
    assert all(shown) and len(shown) > 8

    assert services.sequencer is not None
    await services.sequencer.run_once()
    export = await client.get("/v1/ledger/export", headers=keys.auditor)
    lines = export.text.splitlines()
    for secret in shown:
        assert secret not in export.text
    assert agent_key["x"] not in export.text  # keys by thumbprint only

    checkpoints = (
        await client.get("/v1/ledger/checkpoints?limit=500", headers=keys.auditor)
    ).json()
    assert checkpoints["next_cursor"] is None
    key_set = ledger_keyset((await client.get("/v1/ledger/keys")).json())

    async def read() -> AsyncIterator[str]:
        for line in lines:
            yield line

    report = await verify_export(read(), checkpoints["items"], key_set)
    assert report.unverified == 0 and report.entries == len(lines)
    recorded = await entries(services)
    assert report.kinds[KIND] == len(recorded) >= 12
    assert {e["object_type"] for e in recorded} == {
        "resource_server",
        "tool",
        "api_key",
        "agent",
        "webhook",
    }
