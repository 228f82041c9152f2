"""An HTTP API behind the gateway: the route table, streamed bodies, the credential."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from authority.gateway.app import Gateway
from authority.sdk.mcp import GatewayAuthHttpx
from tests.integration.gateway.conftest import Stack, agent_client
from tests.integration.gateway.fakes import MASK
from tests.integration.gateway.test_mcp import needs_arguments
from tests.integration.gateway.upstreams import API_KEY


async def token(stack: Stack, tool: str, resource: str, action: str, **kw: Any) -> str:
    assert stack.agent is not None
    issued = await stack.agent.token(tool, resource, action, audience=stack.api_url, **kw)
    return issued.value


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_a_declared_route_with_its_token_is_forwarded_with_the_credential(
    stack: Stack, gateway: Gateway
) -> None:
    value = await token(stack, "api.echo", "echo", "read")
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(stack.api_url + "/echo", headers={**bearer(value), "DPoP": "x"})
    assert response.status_code == 200
    seen = response.json()["headers"]
    # The upstream echoed what it received: its key (stripped on the way back), no token.
    assert seen["x-api-key"] == "[redacted]"
    assert "authorization" not in seen
    assert "dpop" not in seen
    assert API_KEY not in response.text
    assert response.json()["note"] == MASK  # the stream masker ran on the body
    arrival = stack.api_seen.arrivals[0]
    assert arrival.headers["x-api-key"] == API_KEY
    assert value not in json.dumps(arrival.headers)
    record = stack.recorder.calls[-1]
    assert (record.outcome, record.status, record.tool) == ("forwarded", 200, "api.echo")
    assert record.response is not None and record.response.size == len(response.content)


async def test_an_agent_cannot_bring_its_own_upstream_credential(
    stack: Stack, gateway: Gateway
) -> None:
    value = await token(stack, "api.echo", "echo", "read")
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            stack.api_url + "/echo", headers={**bearer(value), "X-Api-Key": "forged"}
        )
    assert response.status_code == 200
    assert [v for k, v in stack.api_seen.arrivals[0].raw_headers if k == "x-api-key"] == [API_KEY]


async def test_an_undeclared_route_or_another_calls_token_is_refused(
    stack: Stack, gateway: Gateway
) -> None:
    value = await token(stack, "api.echo", "echo", "read")
    async with httpx.AsyncClient(timeout=10) as http:
        undeclared = await http.get(stack.api_url + "/secrets", headers=bearer(value))
        other = await http.get(stack.api_url + "/stream", headers=bearer(value))
        bare = await http.get(stack.api_url + "/echo")
    assert undeclared.status_code == 403
    assert other.status_code == 403
    assert 'error="insufficient_scope"' in other.headers["www-authenticate"]
    assert bare.status_code == 401
    metadata = f"{stack.public_url}/.well-known/oauth-protected-resource/u/api"
    assert f'resource_metadata="{metadata}"' in bare.headers["www-authenticate"]
    assert stack.api_seen.arrivals == []


async def test_a_route_outside_the_delegation_gets_no_token(stack: Stack, gateway: Gateway) -> None:
    from authority.sdk.agent import AuthorityClientError

    with pytest.raises(AuthorityClientError):
        await token(stack, "api.admin", "admin", "read")
    assert stack.api_seen.arrivals == []


async def test_bodies_stream_both_ways(stack: Stack, gateway: Gateway) -> None:
    value = await token(stack, "api.upload", "files", "write")
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):
            chunk = b"x" * 65536
            sent += len(chunk)
            yield chunk

    async with httpx.AsyncClient(timeout=30) as http:
        uploaded = await http.put(stack.api_url + "/upload", content=body(), headers=bearer(value))
        assert uploaded.json() == {"received": sent}
        value = await token(stack, "api.stream", "stream", "read")
        chunks = []
        async with http.stream("GET", stack.api_url + "/stream", headers=bearer(value)) as response:
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
    text = b"".join(chunks).decode()
    assert text.startswith("chunk 0; ")
    # The upstream's credential, split across two chunks upstream, is stripped whole.
    assert API_KEY not in text
    assert text.endswith("[redacted]")
    assert len(chunks) > 1  # streamed, not gathered


async def test_a_blocked_command_is_not_forwarded(stack: Stack, gateway: Gateway) -> None:
    value = await token(stack, "api.run", "rm -rf", "run")
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(stack.api_url + "/run/rm -rf", headers=bearer(value))
        allowed = await http.post(
            stack.api_url + "/run/ls", headers=bearer(await token(stack, "api.run", "ls", "run"))
        )
    assert response.status_code == 403
    assert allowed.json() == {"ran": "ls"}
    assert [a.path for a in stack.api_seen.arrivals] == ["/run/ls"]
    blocked = [r for r in stack.recorder.calls if r.outcome == "blocked"]
    assert blocked[0].blocked_by == "no-recursive-delete"


async def test_revocation_stops_the_next_call(stack: Stack, gateway: Gateway) -> None:
    first = await token(stack, "api.echo", "echo", "read")
    second = await token(stack, "api.echo", "echo", "read")
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(stack.api_url + "/echo", headers=bearer(first))).status_code == 200
        world = stack.world
        revoked = await world.client.post(
            f"/v1/delegations/{world.delegation_id}/revoke", headers=world.auth(world.owner_key)
        )
        assert revoked.status_code == 200
        feed = gateway.upstream("api").gate.feed
        assert feed is not None
        for _ in range(100):
            if feed.revoked.delegations:
                break
            await asyncio.sleep(0.05)
        refused = await http.get(stack.api_url + "/echo", headers=bearer(second))
    assert refused.status_code == 401
    assert len(stack.api_seen.arrivals) == 1


async def test_dpop_bound_tokens_are_checked_against_the_gateways_url(
    stack: Stack, gateway: Gateway
) -> None:
    agent = agent_client(stack.world, stack.issuer, dpop=True)
    try:
        auth = GatewayAuthHttpx(agent)
        async with httpx.AsyncClient(timeout=10, auth=auth) as http:
            response = await http.get(stack.api_url + "/echo")
        assert response.status_code == 200, response.text
        await auth.aclose()
        issued = await agent.token("api.echo", "echo", "read", audience=stack.api_url)
        async with httpx.AsyncClient(timeout=10) as http:
            no_proof = await http.get(
                stack.api_url + "/echo", headers={"Authorization": f"DPoP {issued.value}"}
            )
        assert no_proof.status_code == 401
        assert no_proof.headers["www-authenticate"].startswith("DPoP ")
    finally:
        await agent.aclose()
    assert len(stack.api_seen.arrivals) == 1


@needs_arguments
async def test_a_bound_body_must_be_the_tokens_arguments(stack: Stack, gateway: Gateway) -> None:
    asked = {"title": "Crash"}
    value = await token(stack, "api.issues.create", "acme/web", "create", arguments=asked)
    url = stack.api_url + "/repos/acme/web/issues"
    async with httpx.AsyncClient(timeout=10) as http:
        changed = await http.post(
            url, json={"title": "Crash", "labels": ["p0"]}, headers=bearer(value)
        )
        assert changed.status_code == 403
        assert stack.api_seen.arrivals == []
        auth = GatewayAuthHttpx(stack.agent)  # type: ignore[arg-type]
        created = await http.post(url, json=asked, auth=auth)
        await auth.aclose()
    assert created.status_code == 201, created.text
    assert created.json() == {"created": "acme/web", "title": "Crash"}


async def test_a_path_that_could_change_on_its_way_is_refused(
    stack: Stack, gateway: Gateway
) -> None:
    value = await token(stack, "api.run", "..", "run")
    async with httpx.AsyncClient(timeout=10) as http:
        for path in ("/run/%2e%2e", "/run/a%2fb", "//run/x", "/run/%2E%2e"):
            response = await http.post(stack.api_url + path, headers=bearer(value))
            assert response.status_code == 400, path
        fine = await http.post(
            stack.api_url + "/run/rm%20-i",
            headers=bearer(await token(stack, "api.run", "rm -i", "run")),
        )
    assert fine.json() == {"ran": "rm -i"}
    assert [a.path for a in stack.api_seen.arrivals] == ["/run/rm -i"]


async def test_a_query_the_token_does_not_cover_is_refused(stack: Stack, gateway: Gateway) -> None:
    asked = {"title": "Crash"}
    value = await token(stack, "api.issues.create", "acme/web", "create", arguments=asked)
    url = stack.api_url + "/repos/acme/web/issues?title=Other&labels=p0"
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(url, json=asked, headers=bearer(value))
    assert response.status_code == 400
    assert "query" in response.json()["error_description"]
    assert stack.api_seen.arrivals == []


async def test_a_bound_body_that_repeats_a_member_is_refused(
    stack: Stack, gateway: Gateway
) -> None:
    asked = {"title": "Crash"}
    value = await token(stack, "api.issues.create", "acme/web", "create", arguments=asked)
    # A parser that keeps the first copy would act on "Other", which the digest never saw.
    body = b'{"title": "Other", "title": "Crash"}'
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            stack.api_url + "/repos/acme/web/issues",
            content=body,
            headers={**bearer(value), "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert stack.api_seen.arrivals == []


async def test_a_repeated_authorization_header_is_refused(stack: Stack, gateway: Gateway) -> None:
    value = await token(stack, "api.echo", "echo", "read")
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            stack.api_url + "/echo",
            headers=[(b"Authorization", f"Bearer {value}".encode())] * 2,
        )
    assert response.status_code == 400
    assert stack.api_seen.arrivals == []
