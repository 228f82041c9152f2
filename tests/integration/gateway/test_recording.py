"""The gateway with the real recorder: every call's record reaches the authority's ledger
and the auditor reads it back, by the token's jti, with the digests of what passed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import httpx
import jwt

from authority.gateway.calls import Seams
from authority.gateway.wiring import build_recorder
from tests.integration.gateway.conftest import Stack
from tests.integration.gateway.fakes import FakeCommands, FakeMasking
from tests.integration.gateway.test_http import bearer, token


def digest(data: bytes) -> str:
    raw = hashlib.sha256(data).digest()
    return "sha-256:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def recordings(stack: Stack, jti: str) -> list[dict[str, Any]]:
    world = stack.world
    response = await world.client.get(
        "/v1/recordings", params={"jti": jti}, headers=world.auth(world.admin)
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_every_forwarded_call_is_recorded_at_the_authority(stack: Stack) -> None:
    recorder = build_recorder(stack.settings(recording={"max_outage": 5}))
    seams = Seams(recorder=recorder, masking=FakeMasking(), commands=FakeCommands())
    async with stack.gateway(seams=seams):
        value = await token(stack, "api.echo", "echo", "read")
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(stack.api_url + "/echo", headers=bearer(value))
        assert response.status_code == 200
        await asyncio.wait_for(recorder.flush(), 10)
    jti = jwt.decode(value, options={"verify_signature": False})["jti"]
    (recording,) = await recordings(stack, jti)
    entry = recording["entry"]["body"]
    entry = json.loads(entry) if isinstance(entry, str) else entry
    text = json.dumps(entry)
    # What the agent received is what was recorded: the digest of the answer it got.
    assert digest(response.content) in text
    assert "api.echo" in text
    assert value not in text  # the token itself is never recorded
