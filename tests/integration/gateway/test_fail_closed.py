"""The gateway fails closed: when it cannot tell that a token is good right now (the
authority is unreachable, its feed silent, its keys unknown) or cannot record the call,
the answer is 503 and nothing reaches the upstream."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authority.gateway.app import Gateway
from tests.integration.gateway.conftest import Stack
from tests.integration.gateway.test_http import bearer, token
from tests.integration.gateway.test_mcp import ACCEPT, MODERN, _meta


async def echo(stack: Stack, value: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(stack.api_url + "/echo", headers=bearer(value))


async def mcp_list(stack: Stack, value: str) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": _meta()}}
    headers = {**ACCEPT, **MODERN, "Mcp-Method": "tools/list", **bearer(value)}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(stack.mcp_url, content=json.dumps(body), headers=headers)


async def session_token(stack: Stack) -> str:
    assert stack.agent is not None
    issued = await stack.agent.token(
        "mcp.session.tracker", "tracker", "connect", audience=stack.mcp_url
    )
    return issued.value


async def test_an_unreachable_authority_is_503_and_nothing_forwarded(
    stack: Stack, gateway: Gateway
) -> None:
    good = await token(stack, "api.echo", "echo", "read")
    assert (await echo(stack, good)).status_code == 200  # the keys are known now
    later, session = await token(stack, "api.echo", "echo", "read"), await session_token(stack)
    await stack.proxy.down()
    refused = await echo(stack, later)
    assert refused.status_code == 503
    assert refused.json()["error"] == "temporarily_unavailable"
    listed = await mcp_list(stack, session)
    assert listed.status_code == 503
    assert listed.json()["error"]["code"] == -32012
    assert len(stack.api_seen.arrivals) == 1
    assert stack.mcp_seen.arrivals == []


async def test_a_silent_feed_is_503_and_nothing_forwarded(stack: Stack) -> None:
    async with stack.gateway(feed_max_silence=1.0, authority_timeout=0.5) as gateway:
        good = await token(stack, "api.echo", "echo", "read")
        assert (await echo(stack, good)).status_code == 200
        later = await token(stack, "api.echo", "echo", "read")
        stack.proxy.stall()  # connections stay open; nothing gets through
        feed = gateway.upstream("api").gate.feed
        assert feed is not None
        for _ in range(50):
            if not feed.healthy:
                break
            await asyncio.sleep(0.1)
        assert not feed.healthy
        refused = await echo(stack, later)
        stack.proxy.flow()
    assert refused.status_code == 503
    assert len(stack.api_seen.arrivals) == 1


async def test_unknown_keys_are_503_and_nothing_forwarded(stack: Stack) -> None:
    value = await token(stack, "api.echo", "echo", "read")
    await stack.proxy.down()
    async with stack.gateway(wait_ready=False, authority_timeout=0.5):
        refused = await echo(stack, value)
        again = await echo(stack, value)  # within the keys' refresh interval: still unknown
    assert refused.status_code == 503
    assert again.status_code == 503
    assert stack.api_seen.arrivals == []


async def test_a_token_no_published_key_signed_is_401(stack: Stack, gateway: Gateway) -> None:
    now = int(time.time())
    forged = jwt.encode(
        {
            "iss": stack.issuer,
            "aud": stack.api_url,
            "sub": stack.world.owner_id,
            "iat": now,
            "exp": now + 30,
            "jti": uuid.uuid4().hex,
        },
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"typ": "at+jwt", "kid": "not-a-published-kid"},
    )
    refused = await echo(stack, forged)
    assert refused.status_code == 401
    assert stack.api_seen.arrivals == []


async def test_a_recorder_that_fails_stops_forwarding_until_it_recovers(
    stack: Stack, gateway: Gateway
) -> None:
    stack.recorder.failing = True
    # Asked before forwarding: a recorder that would refuse the record stops the call.
    refused = await echo(stack, await token(stack, "api.echo", "echo", "read"))
    assert refused.status_code == 503
    listed = await mcp_list(stack, await session_token(stack))
    assert listed.status_code == 503
    assert stack.api_seen.arrivals == []
    assert stack.mcp_seen.arrivals == []
    stack.recorder.failing = False
    # The next refusal's own record is kept: the recorder is back, and calls go through.
    assert (await echo(stack, await token(stack, "api.echo", "echo", "read"))).status_code == 503
    assert (await echo(stack, await token(stack, "api.echo", "echo", "read"))).status_code == 200
    assert len(stack.api_seen.arrivals) == 1


async def test_a_record_that_fails_after_the_call_stops_the_next_ones(
    stack: Stack, gateway: Gateway
) -> None:
    stack.recorder.fails_late = True
    first = await echo(stack, await token(stack, "api.echo", "echo", "read"))
    assert first.status_code == 200  # streamed before its record failed
    refused = await echo(stack, await token(stack, "api.echo", "echo", "read"))
    assert refused.status_code == 503
    assert len(stack.api_seen.arrivals) == 1


async def test_a_json_answer_is_withheld_when_its_record_fails(
    stack: Stack, gateway: Gateway
) -> None:
    session = await session_token(stack)
    stack.recorder.fails_late = True
    withheld = await mcp_list(stack, session)
    assert withheld.status_code == 503
    assert "tools" not in withheld.text
    assert len(stack.mcp_seen.arrivals) == 1  # it ran; the agent saw nothing of it
