"""A gateway submits call records over HTTP: checked, entered in the ledger, sealed at rest."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from authority.context import Services
from authority.errors import InvalidGrant
from authority.grants.client_auth import AuthenticatedClient
from authority.recordings.submission import CallIn, Checked
from authority.recordings.submit import _check_grant
from authority.storage.recordings import SubmissionFacts
from authority.storage.schema import call_recordings, ledger_entries
from tests.revocation_support import add_server, basic, client_assertion
from tests.support import World

from .support import (
    REQUEST_MARKER,
    RESPONSE_MARKER,
    auditor,
    b64url,
    body,
    call,
    digest,
    issued_jti,
    submit,
)


@pytest.fixture
def settings(settings_factory: Any) -> Any:
    # A small bound, so that the bound's tests need no large bodies.
    return settings_factory(checkpoint_interval=3600.0, recording_max_body_bytes=1024)


async def gateway_entries(services: Services) -> list[dict[str, Any]]:
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_entries.c.body)
            .where(ledger_entries.c.kind == "gateway_call")
            .order_by(ledger_entries.c.id)
        )
        return [orjson.loads(row.body) for row in rows]


async def stored_rows(services: Services) -> list[dict[str, Any]]:
    async with services.engine.connect() as conn:
        rows = await conn.execute(select(call_recordings))
        return [dict(row._mapping) for row in rows]


async def nothing_stored(services: Services) -> bool:
    return await gateway_entries(services) == [] and await stored_rows(services) == []


async def test_a_call_is_recorded_with_the_grant_and_its_heads(world: World) -> None:
    jti = await issued_jti(world)
    document = call(jti)
    response = await submit(world, document)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    call_id = response.json()["call_id"]
    assert response.json() == {"call_id": call_id, "created": True}

    [entry] = await gateway_entries(world.services)
    async with world.services.engine.connect() as conn:
        grant_id = (
            await conn.execute(
                select(call_recordings.c.grant_id).where(call_recordings.c.id == call_id)
            )
        ).scalar_one()
    assert entry == {
        "kind": "gateway_call",
        "version": 1,
        "time": world.services.now(),
        "call_id": call_id,
        "gateway": world.server_id,
        "upstream": "github",
        "transport": "mcp",
        "method": "tools/call",
        "target": "github.issues.create",
        "outcome": "forwarded",
        "status": 200,
        "started_at_ms": 1_800_000_000_250,
        "duration_us": 12_500,
        "jti": jti,
        "grant_id": grant_id,
        # From the grant, not from the gateway's word.
        "agent_id": world.agent_id,
        "owner_id": world.owner_id,
        "delegation_id": world.delegation_id,
        "tool": "github.issues.create",
        "resource": "acme/web",
        "action": "create",
        "request": {
            "digest": digest(REQUEST_MARKER),
            "size": len(REQUEST_MARKER),
            "head_digest": digest(REQUEST_MARKER),
            "head_size": len(REQUEST_MARKER),
            "truncated": False,
        },
        "response": {
            "digest": digest(RESPONSE_MARKER),
            "size": len(RESPONSE_MARKER),
            "head_digest": digest(RESPONSE_MARKER),
            "head_size": len(RESPONSE_MARKER),
            "truncated": False,
        },
        "masked": {"aws_access_key": 1},
    }

    fetched = await world.client.get(f"/v1/recordings/{call_id}", headers=await auditor(world))
    assert fetched.status_code == 200, fetched.text
    recording = fetched.json()
    assert recording["request_head"] == b64url(REQUEST_MARKER)
    assert recording["response_head"] == b64url(RESPONSE_MARKER)
    assert orjson.loads(recording["entry"]["body"]) == entry


async def test_a_resubmission_is_the_same_call(world: World) -> None:
    document = call(await issued_jti(world))
    first = await submit(world, document)
    assert first.status_code == 201, first.text
    again = await submit(world, document)
    assert again.status_code == 200, again.text
    assert again.json() == {"call_id": first.json()["call_id"], "created": False}
    assert len(await gateway_entries(world.services)) == 1


async def test_a_truncated_head_is_kept_as_its_digest_says(world: World) -> None:
    big = b"x" * 5000 + REQUEST_MARKER
    response = await submit(world, call(await issued_jti(world), request=body(big, head=100)))
    assert response.status_code == 201, response.text
    [entry] = await gateway_entries(world.services)
    assert entry["request"] == {
        "digest": digest(big),
        "size": len(big),
        "head_digest": digest(big[:100]),
        "head_size": 100,
        "truncated": True,
    }


async def test_a_refused_call_has_no_token_and_no_agent(world: World) -> None:
    document = call(None, request=None, response=None, masked=None, outcome="refused")
    response = await submit(world, document)
    assert response.status_code == 201, response.text
    [entry] = await gateway_entries(world.services)
    assert "jti" not in entry and "agent_id" not in entry and "request" not in entry
    assert entry["outcome"] == "refused" and entry["status"] == 401


async def test_a_gateway_with_a_key_submits_with_an_assertion(world: World) -> None:
    server = await add_server(world, "https://keyed.example", method="private_key_jwt")
    response = await submit(world, call(None), server)
    assert response.status_code == 201, response.text
    [entry] = await gateway_entries(world.services)
    assert entry["gateway"] == server.id


# --- who may submit ----------------------------------------------------------------------
async def test_unauthenticated_submissions_are_refused(world: World) -> None:
    jti = await issued_jti(world)
    document = call(jti)
    none = await submit(world, document, headers={})
    assert none.status_code == 400, none.text
    assert none.json()["error"] == "invalid_client"
    wrong = await submit(world, document, headers=basic(world.server_id, "rss_wrong"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Basic")
    api_key = await submit(world, document, headers={"Authorization": f"Bearer {world.admin}"})
    assert api_key.status_code == 401
    unknown = await submit(world, document, headers=basic("rs_unknown", world.server_secret))
    assert unknown.status_code == 401
    # A secret in the body is not a way to authenticate here.
    in_body = {**document, "client_id": world.server_id, "client_secret": world.server_secret}
    assert (await submit(world, in_body, headers={})).status_code == 400
    assert await nothing_stored(world.services)


async def test_an_assertion_is_single_use(world: World) -> None:
    server = await add_server(world, "https://keyed.example", method="private_key_jwt")
    assert server.key is not None
    members = client_assertion(server.key, server.id, world.clock.now())
    first = await submit(world, {**call(None), **members}, headers={})
    assert first.status_code == 201, first.text
    replayed = await submit(world, {**call(None), **members}, headers={})
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_client"
    assert len(await gateway_entries(world.services)) == 1


async def test_a_token_for_another_server_is_refused(world: World) -> None:
    jti = await issued_jti(world)
    other = await add_server(world, "https://other.example")
    response = await submit(world, call(jti), other)
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The call's token was not issued for this server.",
    }
    unknown = await submit(world, call("jti-that-was-never-issued"))
    assert unknown.status_code == 400
    assert unknown.json() == {
        "error": "invalid_grant",
        "error_description": "The call's jti names no token this authority issued.",
    }
    assert await nothing_stored(world.services)


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("agent_id", "agt_someone_else"),
        ("owner_id", "own_someone_else"),
        ("delegation_id", "dlg_other"),
        ("tool", "github.repos.delete"),
        ("resource", "acme/other"),
        ("action", "delete"),
    ],
)
async def test_a_record_that_contradicts_its_grant_is_refused(
    world: World, member: str, value: str
) -> None:
    response = await submit(world, call(await issued_jti(world), **{member: value}))
    assert response.status_code == 400, response.text
    assert response.json()["error_description"] == f"The call's {member} is not its token's."
    assert await nothing_stored(world.services)


# --- bounds and shapes --------------------------------------------------------------------
ONLY_BLOCKED = "A blocked call, and only a blocked call, names its blocked_by rule."


async def test_a_head_over_the_bound_is_413_and_stores_nothing(world: World) -> None:
    jti = await issued_jti(world)
    over = b"y" * 1025
    response = await submit(world, call(jti, response=body(over)))
    assert response.status_code == 413, response.text
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The response head is longer than this authority records "
        "(recording_max_body_bytes).",
    }
    # At the bound it is taken; a body larger than the bound goes in truncated.
    assert (await submit(world, call(jti, response=body(over[:1024])))).status_code == 201
    assert (await submit(world, call(jti, response=body(over, head=1024)))).status_code == 201
    assert len(await gateway_entries(world.services)) == 2


async def test_a_body_over_the_submission_cap_is_413(world: World) -> None:
    jti = await issued_jti(world)
    huge = call(jti, upstream="u" * 200, request=body(b"z" * 100_000))
    response = await submit(world, huge)
    assert response.status_code == 413
    assert await nothing_stored(world.services)


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        (
            {"request": {**body(b"abc"), "digest": digest(b"abd")}},
            "The request head is not truncated, so it must be the whole body: its size and "
            "digest must be the body's.",
        ),
        (
            {"request": {**body(b"abc"), "size": 4}},
            "The request head is not truncated, so it must be the whole body: its size and "
            "digest must be the body's.",
        ),
        (
            {"response": {**body(b"abc"), "truncated": True}},
            "A truncated response head must be shorter than its body.",
        ),
        (
            {"request": {**body(b"abc"), "head": "!!!"}},
            "The request.head field must be a string of at most 5592408 characters "
            "matching ^[A-Za-z0-9_-]*$.",
        ),
        ({"request": {**body(b"abc"), "head": "A"}}, "The request head is not base64url."),
        (
            {"outcome": "blocked"},
            "A blocked call, and only a blocked call, names its blocked_by rule.",
        ),
        (
            {"blocked_by": "rm"},
            "A blocked call, and only a blocked call, names its blocked_by rule.",
        ),
        (
            {"submission_id": "has spaces"},
            "The submission_id field must be a string of 1 to 64 characters "
            "matching ^[A-Za-z0-9_-]+$.",
        ),
        ({"status": 99}, "The status field must be an integer between 100 and 599."),
        ({"kind": "ftp"}, "The kind field must be one of http, mcp."),
        (
            {"target": "/a\x00b"},
            "The target field must be a string of 1 to 2048 characters "
            "in the form the OpenAPI document gives.",
        ),
        (
            {"masked": {"r": -1}},
            "The masked[*] field must be an integer between 0 and 9007199254740991.",
        ),
        (
            {"started_at": "now"},
            "The started_at field must be a number between 0 and 9007199254740.992.",
        ),
        (
            {"extra": 1},
            "The body has an unknown field; the allowed fields are submission_id, upstream, "
            "kind, method, target, outcome, status, started_at, duration_ms, jti, agent_id, "
            "owner_id, delegation_id, tool, resource, action, request, response, masked, "
            "blocked_by, client_id, client_assertion_type and client_assertion.",
        ),
    ],
)
async def test_malformed_records_are_400_and_store_nothing(
    world: World, changes: dict[str, Any], description: str
) -> None:
    response = await submit(world, call(await issued_jti(world), **changes))
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_request", "error_description": description}
    assert await nothing_stored(world.services)


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        ({"outcome": "forwarded"}, "Only a refused call may have no jti."),
        ({"agent_id": "agt_1"}, "A call without a jti names no agent, owner or delegation."),
    ],
)
async def test_a_call_without_a_token_is_a_refused_one(
    world: World, changes: dict[str, Any], description: str
) -> None:
    response = await submit(world, call(None, **changes))
    assert response.status_code == 400, response.text
    assert response.json()["error_description"] == description
    assert await nothing_stored(world.services)


# --- at rest ---------------------------------------------------------------------------------
async def test_the_heads_are_sealed_at_rest(world: World, backend: str, tmp_path: Path) -> None:
    response = await submit(world, call(await issued_jti(world)))
    assert response.status_code == 201, response.text
    markers = (REQUEST_MARKER, RESPONSE_MARKER, b64url(REQUEST_MARKER).encode())
    for row in await stored_rows(world.services):
        for value in row.values():
            data = value if isinstance(value, bytes) else str(value).encode()
            assert not any(marker in data for marker in markers), row
        assert row["request_head"] is not None and row["response_head"] is not None
    async with world.services.engine.connect() as conn:
        for entry in await conn.execute(select(ledger_entries)):
            assert not any(marker in str(tuple(entry)).encode() for marker in markers)
    if backend == "embedded":
        files = database_files(tmp_path)
        assert files
        for name, data in files.items():
            assert not any(marker in data for marker in markers), name


def database_files(data_dir: Path) -> dict[str, bytes]:
    """The SQLite file and its write-ahead log, wherever the rows are now."""
    return {p.name: p.read_bytes() for p in data_dir.iterdir() if p.name.startswith("authority.db")}


def test_only_an_issued_grant_vouches_for_a_call() -> None:
    """A grant row that was not issued (denied, pending) names no token, whatever else
    it says: even one for this server's audience."""
    audience = "https://tools.example"
    names = [f.name for f in dataclasses.fields(SubmissionFacts)]
    facts = SubmissionFacts(**dict.fromkeys(names))
    facts = dataclasses.replace(facts, grant_id="grt_1", decision="denied", grant_audience=audience)
    client = AuthenticatedClient("rs_1", "resource_server", audience, None)
    record = Checked(CallIn.model_validate(call("jti-1")), None, None)
    with pytest.raises(InvalidGrant, match="names no token"):
        _check_grant(client, facts, record)
