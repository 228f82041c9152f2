"""A gateway's side of recording, done by hand: the JSON of a call record, posted as a
registered resource server authenticates (HTTP Basic, or an RFC 7523 assertion member)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

import httpx
import jwt

from authority.management.api_keys import issue_operator_key
from tests.revocation_support import Server, basic, client_assertion, issue, world_server
from tests.support import World

CALLS = "/v1/gateway/calls"
RECORDINGS = "/v1/recordings"
#: Bytes that must never be stored in clear.
REQUEST_MARKER = b"REQ-MARKER-7f3a9c{'arguments': 'rm -rf /'}"
RESPONSE_MARKER = b"RESP-MARKER-2b8e41 secret file contents"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def digest(data: bytes) -> str:
    return "sha-256:" + b64url(hashlib.sha256(data).digest())


def body(data: bytes, *, head: int | None = None) -> dict[str, Any]:
    """One side of a call: the whole of ``data``, or its first ``head`` bytes."""
    kept = data if head is None else data[:head]
    return {
        "digest": digest(data),
        "size": len(data),
        "head": b64url(kept),
        "truncated": len(kept) < len(data),
    }


def jti_of(token: str) -> str:
    value: str = jwt.decode(token, options={"verify_signature": False})["jti"]
    return value


async def issued_jti(world: World) -> str:
    return jti_of(await issue(world))


def call(jti: str | None, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "submission_id": uuid.uuid4().hex,
        "upstream": "github",
        "kind": "mcp",
        "method": "tools/call",
        "target": "github.issues.create",
        "outcome": "forwarded" if jti is not None else "refused",
        "status": 200 if jti is not None else 401,
        "started_at": 1_800_000_000.25,
        "duration_ms": 12.5,
        "request": body(REQUEST_MARKER),
        "response": body(RESPONSE_MARKER),
        "masked": {"aws_access_key": 1},
    }
    if jti is not None:
        document["jti"] = jti
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


async def submit(
    world: World,
    document: dict[str, Any],
    server: Server | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a record as ``server`` (default: the world's), or with ``headers`` as given."""
    if headers is None:
        server = server or world_server(world)
        if server.key is not None:
            document = {**document, **client_assertion(server.key, server.id, world.clock.now())}
            headers = {}
        else:
            assert server.secret is not None
            headers = basic(server.id, server.secret)
    return await world.client.post(CALLS, json=document, headers=headers)


async def auditor(world: World) -> dict[str, str]:
    issued = await issue_operator_key(world.services, "auditor", "recording tests")
    return {"Authorization": f"Bearer {issued.secret}"}
