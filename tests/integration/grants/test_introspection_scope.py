"""The ``delegation_scope`` member of an active introspection answer: the delegation's
scope for the calling resource server's own tools, and nothing it grants elsewhere."""

from __future__ import annotations

from tests.revocation_support import add_server, introspect, issue
from tests.support import World


async def test_the_answer_tells_the_scope_of_the_callers_tools_only(world: World) -> None:
    other = await add_server(world, "https://mail.example.test")
    created = await world.post(
        "/v1/tools",
        world.admin,
        {
            "name": "mail.send",
            "resource_server_id": other.id,
            "actions": ["send"],
            "risk_tier": 1,
        },
    )
    assert created["name"] == "mail.send"
    await world.delegate(
        scope=[
            {"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]},
            {"tool": "mail.send", "resources": ["*"], "actions": ["send"]},
        ]
    )
    token = await issue(world)
    answer = (await introspect(world, token)).json()
    assert answer["active"] is True
    assert answer["delegation_scope"] == [
        {"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]}
    ]


async def test_an_inactive_answer_tells_nothing(world: World) -> None:
    token = await issue(world)
    revoked = await world.client.post(
        f"/v1/delegations/{world.delegation_id}/revoke", headers=world.auth(world.owner_key)
    )
    assert revoked.status_code == 200
    assert (await introspect(world, token)).json() == {"active": False}
