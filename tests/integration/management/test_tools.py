"""The tool registry: admin-only writes, fixed name and server, sound action lists."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from authority.context import Services

from .conftest import Keys, dump


async def test_create_read_update_retire(client: httpx.AsyncClient, keys: Keys) -> None:
    server = await keys.server()
    body = {
        "name": "github.issues.create",
        "description": "Open an issue",
        "resource_server_id": server["id"],
        "actions": ["create", "read"],
        "read_actions": ["read"],
        "risk_tier": 2,
        "approval_required": True,
        "single_use": True,
        "dpop_required": True,
        "max_token_lifetime": 30,
    }
    response = await client.post("/v1/tools", json=body, headers=keys.admin)
    assert response.status_code == 201
    tool = response.json()
    assert response.headers["Location"] == f"/v1/tools/{tool['id']}"
    assert {k: tool[k] for k in body} == body
    assert tool["status"] == "active"

    assert (await client.get(f"/v1/tools/{tool['id']}", headers=keys.admin)).json() == tool

    patched = await client.patch(
        f"/v1/tools/{tool['id']}",
        json={"actions": ["create", "read", "close"], "risk_tier": 3, "max_token_lifetime": None},
        headers=keys.admin,
    )
    assert patched.status_code == 200
    assert patched.json()["actions"] == ["create", "read", "close"]
    assert patched.json()["read_actions"] == ["read"]
    assert patched.json()["max_token_lifetime"] is None

    retired = await client.delete(f"/v1/tools/{tool['id']}", headers=keys.admin)
    assert retired.json()["status"] == "retired"
    assert (
        await client.patch(f"/v1/tools/{tool['id']}", json={"risk_tier": 0}, headers=keys.admin)
    ).status_code == 409


async def test_defaults(keys: Keys) -> None:
    server = await keys.server()
    tool = await keys.tool(server["id"], read_actions=[])
    assert tool["approval_required"] is False
    assert tool["single_use"] is False
    assert tool["dpop_required"] is False
    assert tool["max_token_lifetime"] is None


async def test_duplicate_name_is_409(client: httpx.AsyncClient, keys: Keys) -> None:
    server = await keys.server()
    tool = await keys.tool(server["id"])
    body = {k: tool[k] for k in ("name", "resource_server_id", "actions", "risk_tier")}
    response = await client.post("/v1/tools", json=body, headers=keys.admin)
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "GitHub.Issues"}, "name"),
        ({"name": "github..issues"}, "name"),
        ({"name": "github issues"}, "name"),
        ({"name": ""}, "name"),
        ({"actions": []}, "actions"),
        ({"actions": ["create", "create"]}, "actions"),
        ({"actions": ["Create"]}, "actions"),
        ({"actions": "create"}, "actions"),
        ({"actions": [f"a{i}" for i in range(65)]}, "actions"),
        ({"read_actions": ["delete"]}, "read_actions"),
        ({"read_actions": ["read", "read"]}, "read_actions"),
        ({"risk_tier": 4}, "risk_tier"),
        ({"risk_tier": -1}, "risk_tier"),
        ({"risk_tier": "1"}, "risk_tier"),
        ({"approval_required": "yes"}, "approval_required"),
        ({"single_use": 1}, "single_use"),
        ({"max_token_lifetime": 0}, "max_token_lifetime"),
        ({"max_token_lifetime": 61}, "max_token_lifetime"),  # settings: 60
    ],
)
async def test_invalid_tools_are_refused(
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    change: dict[str, Any],
    field: str,
) -> None:
    server = await keys.server()
    body = {
        "name": "github.issues.create",
        "resource_server_id": server["id"],
        "actions": ["create", "read"],
        "read_actions": ["read"],
        "risk_tier": 1,
        **change,
    }
    before = await dump(services)
    response = await client.post("/v1/tools", json=body, headers=keys.admin)
    assert response.status_code == 400
    assert field in response.json()["error_description"]
    assert await dump(services) == before


async def test_lifetime_cap_follows_the_settings(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    server = await keys.server()
    limit = services.settings.access_token_max_lifetime
    ok = await keys.tool(server["id"], max_token_lifetime=limit)
    too_long = await client.patch(
        f"/v1/tools/{ok['id']}", json={"max_token_lifetime": limit + 1}, headers=keys.admin
    )
    assert too_long.status_code == 400


async def test_read_actions_stay_a_subset_when_actions_shrink(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    server = await keys.server()
    tool = await keys.tool(server["id"])
    before = await dump(services)
    response = await client.patch(
        f"/v1/tools/{tool['id']}", json={"actions": ["create"]}, headers=keys.admin
    )
    assert response.status_code == 400
    assert await dump(services) == before


async def test_name_and_server_are_fixed(client: httpx.AsyncClient, keys: Keys) -> None:
    server, other = await keys.server("one"), await keys.server("two")
    tool = await keys.tool(server["id"])
    for body in ({"name": "other.tool"}, {"resource_server_id": other["id"]}, {"status": "active"}):
        response = await client.patch(f"/v1/tools/{tool['id']}", json=body, headers=keys.admin)
        assert response.status_code == 400, body


async def test_server_must_exist_and_be_active(client: httpx.AsyncClient, keys: Keys) -> None:
    body = {"name": "a.b", "actions": ["x"], "risk_tier": 0}
    missing = await client.post(
        "/v1/tools", json={**body, "resource_server_id": "rs_" + "0" * 32}, headers=keys.admin
    )
    assert missing.status_code == 404
    server = await keys.server()
    await client.delete(f"/v1/resource-servers/{server['id']}", headers=keys.admin)
    retired = await client.post(
        "/v1/tools", json={**body, "resource_server_id": server["id"]}, headers=keys.admin
    )
    assert retired.status_code == 409


async def test_paging_tools(client: httpx.AsyncClient, keys: Keys) -> None:
    server = await keys.server()
    made = [(await keys.tool(server["id"], name=f"t.n{i}"))["id"] for i in range(4)]
    first = (await client.get("/v1/tools?limit=3", headers=keys.admin)).json()
    assert len(first["items"]) == 3
    second = (
        await client.get(
            "/v1/tools", params={"limit": "3", "cursor": first["next_cursor"]}, headers=keys.admin
        )
    ).json()
    assert second["next_cursor"] is None
    ids = [item["id"] for item in first["items"] + second["items"]]
    assert sorted(ids) == sorted(made)
    assert len(ids) == len(set(ids))
