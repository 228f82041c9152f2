"""Bad input on every /v1 route: a 4xx JSON error naming the problem, never a 5xx, never an
echo of the input, and nothing stored changes.

The sweep is driven by the route table, so a route added without a place here fails
``test_the_sweep_covers_every_route``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.routing import Route

from authority.context import Services
from authority.endpoints.management import routes

from .conftest import Keys, Owner, dump, ed25519_jwk, jwks

MARKER = "MARKER7f3a"


@dataclass
class World:
    admin: dict[str, str]
    alice: Owner
    bob: Owner
    ids: dict[str, str]  # path parameter -> an existing id (alice's where it matters)
    bob_ids: dict[str, str]


@pytest.fixture
async def world(client: httpx.AsyncClient, keys: Keys) -> World:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    agent = await keys.agent(alice, "a")
    bob_agent = await keys.agent(bob, "b")
    server = await keys.server("jwt", auth_method="private_key_jwt", jwks=jwks(ed25519_jwk("s1")))
    tool = await keys.tool(server["id"])
    alice_key = (await client.get("/v1/me", headers=alice.headers)).json()["key_id"]
    bob_key = (await client.get("/v1/me", headers=bob.headers)).json()["key_id"]
    domain = await client.post("/v1/trust-domains", json=DOMAIN, headers=keys.admin)
    assert domain.status_code == 201, domain.text
    return World(
        admin=keys.admin,
        alice=alice,
        bob=bob,
        ids={
            "owner_id": alice.id,
            "key_id": alice_key,
            "agent_id": agent["id"],
            "tool_id": tool["id"],
            "server_id": server["id"],
            "domain_id": domain.json()["id"],
        },
        bob_ids={"owner_id": bob.id, "key_id": bob_key, "agent_id": bob_agent["id"]},
    )


DOMAIN = {
    "name": "github",
    "preset": "github",
    "issuer": "https://token.actions.githubusercontent.com",
    "audience": "https://authority.example",
    "key_source": "jwks_uri",
    "key_location": "https://token.actions.githubusercontent.com/.well-known/jwks",
}  # claim_mapping: {MARKER: MARKER} is a valid mapping (federation tests cover its refusals)


def valid_bodies(world: World) -> dict[tuple[str, str], dict[str, Any]]:
    """A body each write route would accept: the base that every field mutation starts from."""
    return {
        ("POST", "/v1/owners"): {"name": "n", "email": "n@example.org"},
        ("PATCH", "/v1/owners/{owner_id}"): {"name": "n2", "email": "n@example.org"},
        ("POST", "/v1/owners/{owner_id}/api-keys"): {"label": "l"},
        ("POST", "/v1/api-keys"): {"role": "auditor", "label": "l"},
        ("POST", "/v1/agents"): {
            "name": "new",
            "description": "d",
            "owner_id": world.alice.id,
            "autonomy_level": 1,
            "jwks": jwks(),
        },
        ("PATCH", "/v1/agents/{agent_id}"): {
            "name": "renamed",
            "description": "d",
            "autonomy_level": 1,
            "jwks": jwks(),
        },
        ("POST", "/v1/tools"): {
            "name": "x.y",
            "description": "d",
            "resource_server_id": world.ids["server_id"],
            "actions": ["a", "b"],
            "read_actions": ["a"],
            "risk_tier": 1,
            "approval_required": True,
            "single_use": True,
            "dpop_required": True,
            "max_token_lifetime": 10,
        },
        ("PATCH", "/v1/tools/{tool_id}"): {
            "description": "d",
            "actions": ["create", "read", "x"],
            "read_actions": ["read"],
            "risk_tier": 2,
            "approval_required": True,
            "single_use": True,
            "dpop_required": True,
            "max_token_lifetime": 10,
        },
        ("POST", "/v1/resource-servers"): {
            "name": "new",
            "audience": "https://new.example",
            "auth_method": "private_key_jwt",
            "jwks": jwks(),
        },
        ("PATCH", "/v1/resource-servers/{server_id}"): {"name": "renamed", "jwks": jwks()},
        ("POST", "/v1/trust-domains"): {**DOMAIN, "name": "other"},
        ("PATCH", "/v1/trust-domains/{domain_id}"): {
            "audience": "https://authority-2.example",
            "key_source": "discovery",
            "key_location": "https://token.actions.githubusercontent.com/.well-known/openid-configuration",
            "status": "disabled",
        },
    }


#: Fields without which each creation must fail (for an admin caller).
REQUIRED: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/owners"): {"name"},
    ("POST", "/v1/owners/{owner_id}/api-keys"): set(),
    ("POST", "/v1/api-keys"): {"role"},
    ("POST", "/v1/agents"): {"name", "owner_id", "jwks"},
    ("POST", "/v1/tools"): {"name", "resource_server_id", "actions", "risk_tier"},
    # Without the method, the default (a client secret) does not take a JWKS.
    ("POST", "/v1/resource-servers"): {"name", "audience", "auth_method", "jwks"},
    ("POST", "/v1/trust-domains"): {"name", "preset", "issuer", "audience", "key_location"},
}


def route_table() -> list[tuple[str, str]]:
    table = []
    for route in routes:
        assert isinstance(route, Route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                table.append((method, route.path))
    return table


ROUTES = route_table()
BAD_VALUES: list[Any] = [
    [MARKER],
    {MARKER: MARKER},
    10**20,
    MARKER + "\u0000",
    "\ud800" + MARKER,
    "x" * 5000 + MARKER,
]


@dataclass
class Bad:
    why: str
    content: bytes | None = None
    content_type: str | None = "application/json"
    params: list[tuple[str, str]] | None = None
    path: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    chunked: bool = False


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def bad_requests(method: str, template: str, world: World) -> Iterator[Bad]:
    params = [
        name
        for name in ("owner_id", "key_id", "agent_id", "tool_id", "server_id", "domain_id")
        if "{" + name + "}" in template
    ]
    base = valid_bodies(world).get((method, template))

    yield Bad("no key", encode(base or {}), headers={})
    yield Bad("bad key", encode(base or {}), headers={"Authorization": f"Bearer {MARKER}"})
    yield Bad("unknown query parameter", encode(base or {}), params=[(MARKER, MARKER)])
    listed = ("/owners", "/api-keys", "/agents", "/tools", "/resource-servers", "/trust-domains")
    if template.endswith(listed) and (method == "GET"):
        yield Bad("repeated limit", params=[("limit", "1"), ("limit", "2")])
        yield Bad("bad limit", params=[("limit", MARKER)])
        yield Bad("bad cursor", params=[("cursor", MARKER)])

    for name in params:
        for bad_id in (
            MARKER,
            MARKER + "\u0000",
            "x" * 100,
            "own_" + "0" * 32,
            "a.b",
            MARKER + "%2F..",
        ):
            yield Bad(f"bad {name}", encode(base or {}), path={name: bad_id})
        if name in world.bob_ids:
            # Another owner's object, asked for by alice: as if it did not exist.
            yield Bad(
                f"bob's {name}",
                encode(base or {}),
                path={name: world.bob_ids[name]},
                headers=world.alice.headers,
            )

    if base is None:
        return
    yield Bad("no content type", encode(base), content_type=None)
    yield Bad(
        "form body", b"name=" + MARKER.encode(), content_type="application/x-www-form-urlencoded"
    )
    yield Bad("text body", encode(base), content_type="text/plain")
    yield Bad("malformed JSON", b'{"name": "' + MARKER.encode())
    yield Bad("not UTF-8", b'{"name": "\xff\xfe' + MARKER.encode() + b'"}')
    yield Bad("array", encode([base]))
    yield Bad("string", encode(MARKER))
    yield Bad("null", b"null")
    yield Bad("empty", b"")
    yield Bad("NaN", b'{"name": NaN}')
    yield Bad("repeated member", b'{"name": "a", "name": "' + MARKER.encode() + b'"}')
    yield Bad("deep nesting", b"[" * 20000 + b"]" * 20000)
    yield Bad("huge number", b'{"risk_tier": 1' + b"0" * 5000 + b"}")
    yield Bad("unknown field", encode({**base, MARKER: MARKER}))
    yield Bad("too large", encode({**base, "description": "x" * (70 * 1024)}))
    yield Bad(
        "too large, chunked", encode({**base, "description": "x" * (70 * 1024)}), chunked=True
    )
    yield Bad("lying length", encode(base), headers={"Content-Length": "abc"})
    if method == "PATCH":
        yield Bad("nothing to change", b"{}")
    for field in base:
        for value in BAD_VALUES:
            yield Bad(f"{field} = {str(value)[:20]!r}", encode({**base, field: value}))
        if field in REQUIRED.get((method, template), ()):
            yield Bad(f"{field} missing", encode({k: v for k, v in base.items() if k != field}))
        # Invalid keys, wherever a JWKS is taken.
        if field == "jwks":
            bad_sets: list[dict[str, Any]] = [
                {"keys": [{**ed25519_jwk(MARKER), "d": MARKER}]},
                {"keys": [{"kty": "oct", "k": MARKER, "kid": MARKER}]},
                {"keys": [ed25519_jwk(MARKER), ed25519_jwk(MARKER)]},
                {"keys": [ed25519_jwk(MARKER, use="enc")]},
                {"keys": []},
            ]
            for bad_set in bad_sets:
                yield Bad("bad jwks", encode({**base, field: bad_set}))


async def send(
    client: httpx.AsyncClient, method: str, template: str, world: World, bad: Bad
) -> httpx.Response:
    values = {**world.ids, **(bad.path or {})}
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    headers = dict(world.admin if bad.headers is None else bad.headers)
    if bad.content_type is not None:
        headers["Content-Type"] = bad.content_type
    content: Any = bad.content
    if bad.chunked and content is not None:
        raw = content

        async def stream() -> AsyncIterator[bytes]:
            for i in range(0, len(raw), 4096):
                yield raw[i : i + 4096]

        content = stream()
    params: tuple[tuple[str, str | int | float | bool | None], ...] = tuple(bad.params or ())
    return await client.request(method, path, content=content, params=params, headers=headers)


def test_the_sweep_covers_every_route() -> None:
    writes = {key for key in ROUTES if key[0] in ("POST", "PATCH")}
    bodiless = {
        ("POST", "/v1/resource-servers/{server_id}/secret"),
    }
    world = World({}, Owner("o", "k", {}), Owner("p", "k", {}), {"server_id": "s"}, {})
    assert writes - bodiless == set(valid_bodies(world))


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_bad_input_is_a_4xx_json_error_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, world: World, method: str, template: str
) -> None:
    before = await dump(services)
    count = 0
    for bad in bad_requests(method, template, world):
        count += 1
        response = await send(client, method, template, world, bad)
        where = f"{method} {template}: {bad.why}"
        assert 400 <= response.status_code < 500, (where, response.status_code, response.text)
        assert response.headers["content-type"] == "application/json", where
        body = response.json()
        assert set(body) == {"error", "error_description"}, where
        assert isinstance(body["error"], str) and body["error"], where
        assert isinstance(body["error_description"], str) and body["error_description"], where
        assert MARKER not in response.text, where
        assert response.headers.get("Cache-Control") == "no-store", where
    assert count > 0
    assert await dump(services) == before


async def test_the_valid_bodies_are_valid(client: httpx.AsyncClient, world: World) -> None:
    """The mutations above start from bodies that succeed: each failure is the mutation's."""
    for (method, template), body in valid_bodies(world).items():
        path = template
        for name, value in world.ids.items():
            path = path.replace("{" + name + "}", value)
        response = await client.request(method, path, json=body, headers=world.admin)
        assert response.status_code in (200, 201), (method, template, response.text)
