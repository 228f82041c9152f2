"""Bad input on every /v1 route outside the registries (which tests/unit/management/
test_bad_input.py sweeps field by field): delegations, owner controls, approvals,
webhooks, autonomy and the ledger. Each bad request gets a 4xx JSON error, never a
5xx, never an echo of the input, and nothing stored changes.

Driven by the application's route table: every /v1 route outside the registries is
swept here, including any added later, with no list to keep up to date.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from authority.context import Services
from authority.endpoints import management
from tests.integration.management.conftest import dump
from tests.support import World

MARKER = "MARKER9c1e"
#: Routes anyone may read: the ledger's public keys.
PUBLIC = {("GET", "/v1/ledger/keys")}


def v1_routes(app: Starlette) -> list[tuple[str, str]]:
    table: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/v1/"):
            table.extend((m, route.path) for m in sorted(route.methods or ()) if m != "HEAD")
    return table


def registry_routes() -> set[tuple[str, str]]:
    return {
        (m, r.path)
        for r in management.routes
        if isinstance(r, Route)
        for m in (r.methods or ())
        if m != "HEAD"
    }


@dataclass
class Bad:
    why: str
    content: bytes | None = None
    content_type: str | None = "application/json"
    params: list[tuple[str, str]] | None = None
    path: dict[str, str] | None = None
    headers: dict[str, str] | None = None


def bad_requests(method: str, template: str) -> Iterator[Bad]:
    yield Bad("no key", b"{}", headers={})
    yield Bad("bad key", b"{}", headers={"Authorization": f"Bearer {MARKER}"})
    yield Bad("unknown query parameter", b"{}", params=[(MARKER, MARKER)])
    yield Bad("repeated query parameter", b"{}", params=[("limit", "1"), ("limit", "2")])
    yield Bad("bad limit", b"{}", params=[("limit", MARKER)])
    yield Bad("bad cursor", b"{}", params=[("cursor", MARKER)])
    for name in ("owner_id", "agent_id", "delegation_id", "approval_id"):
        if "{" + name + "}" in template:
            for bad_id in (MARKER, MARKER + "\u0000", "x" * 100, "a.b", MARKER + "%2F.."):
                yield Bad(f"bad {name}", b"{}", path={name: bad_id})
    if method in ("GET", "DELETE"):
        return  # no body to get wrong
    yield Bad("form body", b"name=" + MARKER.encode(), "application/x-www-form-urlencoded")
    yield Bad("text body", b"{}", "text/plain")
    yield Bad("malformed JSON", b'{"reason": "' + MARKER.encode())
    yield Bad("not UTF-8", b'{"reason": "\xff\xfe' + MARKER.encode() + b'"}')
    yield Bad("array", json.dumps([MARKER]).encode())
    yield Bad("string", json.dumps(MARKER).encode())
    yield Bad("NaN", b'{"reason": NaN}')
    yield Bad("repeated member", b'{"reason": "a", "reason": "' + MARKER.encode() + b'"}')
    yield Bad("deep nesting", b"[" * 20000 + b"]" * 20000)
    yield Bad("unknown field", json.dumps({MARKER: MARKER}).encode())
    yield Bad("wrong types", json.dumps({"reason": [MARKER], "url": {MARKER: 1}}).encode())
    yield Bad("NUL in text", json.dumps({"reason": MARKER + "\u0000"}).encode())
    yield Bad("too large", json.dumps({"reason": "x" * (70 * 1024)}).encode())
    yield Bad("lying length", b"{}", headers={"Content-Length": "abc"})


@pytest.fixture
async def ids(world: World) -> dict[str, str]:
    from tests.integration.approvals.support import ask_pending, only_approval, with_risky_tool

    await with_risky_tool(world)
    await ask_pending(world)
    approval = await only_approval(world)
    return {
        "owner_id": world.owner_id,
        "agent_id": world.agent_id,
        "delegation_id": world.delegation_id,
        "approval_id": approval.id,
    }


async def send(
    world: World, method: str, template: str, ids: dict[str, str], bad: Bad, key: str
) -> httpx.Response:
    path = template
    for name, value in {**ids, **(bad.path or {})}.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    headers = world.auth(key) if bad.headers is None else dict(bad.headers)
    if bad.content_type is not None:
        headers["Content-Type"] = bad.content_type
    return await world.client.request(
        method, path, content=bad.content, params=tuple(bad.params or ()), headers=headers
    )


async def test_bad_input_everywhere_is_a_4xx_and_changes_nothing(
    app: Starlette, services: Services, world: World, ids: dict[str, str]
) -> None:
    routes = sorted(set(v1_routes(app)) - registry_routes())
    assert len(routes) >= 10, routes  # delegations, controls, approvals, webhook, ledger...
    before = await dump(services)
    for method, template in routes:
        # The owner reaches the routes it may use; the ledger is the auditors' (and admin's).
        for key in (world.owner_key, world.admin):
            for bad in bad_requests(method, template):
                if (method, template) in PUBLIC and bad.why in ("no key", "bad key"):
                    continue
                response = await send(world, method, template, ids, bad, key)
                where = f"{method} {template}: {bad.why}"
                assert 400 <= response.status_code < 500, (
                    where,
                    response.status_code,
                    response.text,
                )
                assert response.headers["content-type"] == "application/json", where
                body: dict[str, Any] = response.json()
                assert set(body) == {"error", "error_description"}, where
                assert MARKER not in response.text, where
    assert await dump(services) == before
