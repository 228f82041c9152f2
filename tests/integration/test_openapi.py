"""The OpenAPI document over HTTP, and schemathesis run over it against a live server.

The schemathesis run is the README's command (``schemathesis run .../openapi.json``) on a
uvicorn server of the test's own app on a loopback port, on each backend: no 5xx, and
every answer within the document (status, content type, schema). It is bounded (a few
examples per operation, a fixed seed) so each backend's run stays well under a minute.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from authority.endpoints import openapi
from authority.grants.delegations import MAX_PATTERNS
from tests.revocation_support import serving
from tests.support import World

SECRET = "S3CRET-must-never-come-back"

#: What the run checks: the issue's "no 5xx and no answer that breaks the document", and
#: RFC 9110's 405 with Allow for a method the path does not serve.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "unsupported_method",
)
#: Revoking the run's own admin key (its id is in GET /v1/me, and schemathesis reuses
#: what the API answers) would leave every later request a 401: not a finding.
EXCLUDED = ("delete_api_keys_key_id",)
MAX_EXAMPLES = "4"
SEED = "20261201"


async def test_the_document_is_served_and_named_in_the_metadata(
    client: httpx.AsyncClient,
) -> None:
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["authority_openapi_uri"] == str(client.base_url) + "/openapi.json"
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert "/v1/delegations" in document["paths"]
    assert "/oauth2/introspect" in document["paths"]
    # Served from the app's own route table: the same document as built directly.
    assert (await client.get("/openapi.json")).content == response.content


async def test_a_bad_value_is_named_by_its_path_and_range_but_never_echoed(
    world: World,
) -> None:
    bad_tool = {
        "name": SECRET,
        "resource_server_id": world.server_id,
        "actions": ["run"],
        "risk_tier": 7,
    }
    response = await world.client.post("/v1/tools", json=bad_tool, headers=world.auth(world.admin))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert "The risk_tier field must be an integer between 0 and 3." in body["error_description"]
    assert "The name field must be a string" in body["error_description"]
    bad_scope = {
        "agent_id": world.agent_id,
        "intent": "x",
        "expires_in": 600,
        "scope": [{"tool": "t", "resources": [SECRET] * (MAX_PATTERNS + 1), "actions": ["a"]}],
        SECRET: SECRET,
    }
    response = await world.client.post(
        "/v1/delegations", json=bad_scope, headers=world.auth(world.owner_key)
    )
    assert response.status_code == 400
    description = response.json()["error_description"]
    assert "The scope[0].resources field must be an array of 1 to 50 items." in description
    assert "The body has an unknown field; the allowed fields are agent_id," in description
    for answer in (body["error_description"], description, response.text):
        assert SECRET not in answer


def schemathesis_command(url: str, admin_key: str) -> list[str]:
    """The README's command, with the bounds of a test run."""
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        "run",
        f"{url}{openapi.PATH}",
        "--header",
        f"Authorization: Bearer {admin_key}",
        "--checks",
        ",".join(CHECKS),
        *[arg for op in EXCLUDED for arg in ("--exclude-operation-id", op)],
        "--phases",
        "coverage,fuzzing",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
    ]


async def test_a_405_names_every_method_the_path_serves(client: httpx.AsyncClient) -> None:
    # RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a 405".
    for method, path, allow in (
        ("PUT", "/v1/owners", "GET, HEAD, POST"),
        ("TRACE", "/v1/owners/own_1", "DELETE, GET, HEAD, PATCH"),
        ("DELETE", "/oauth2/token", "POST"),
        ("PUT", "/v1/revocations/feed", "GET, HEAD, POST"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allow, (method, path)
        assert response.json()["error"] == "method_not_allowed"


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_schema_break(
    app: Starlette, world: World, tmp_path: Path
) -> None:
    # Something of each kind to list, so that the answers' item schemas are checked too.
    await world.delegate()
    async with serving(app) as url:
        process = await asyncio.create_subprocess_exec(
            *schemathesis_command(url, world.admin),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    counts = re.search(r"Test cases:\s+(\d+) generated, (\d+) passed\s", report)
    assert counts is not None, report[-6000:]
    assert counts[1] == counts[2] and int(counts[1]) > 0, report[-6000:]
