"""The server's logs as an operator reads them: one JSON line per request and per decision,
sharing the request id, naming the route template and never a token or a secret."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authority import logs
from tests.support import World


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The ``authority`` loggers' JSON lines, as ``authority.asgi`` configures them."""
    logger = logging.getLogger("authority")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    try:
        yield stream
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    # Every line is one JSON object: nothing else is written.
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def by(records: list[dict[str, Any]], logger: str) -> list[dict[str, Any]]:
    return [r for r in records if r["logger"] == logger]


async def test_an_issued_exchange_has_its_request_line_and_its_decision_line(
    world: World, lines: io.StringIO
) -> None:
    form = world.exchange_form()
    response = await world.exchange(headers={"X-Request-Id": "trace-42.a:b"})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "trace-42.a:b"

    records = parsed(lines)
    (request,) = by(records, "authority.access")
    assert request["message"] == "request"
    assert request["level"] == "info"
    assert request["method"] == "POST"
    assert request["route"] == "/oauth2/token"
    assert request["status"] == 200
    assert isinstance(request["duration_ms"], float)
    assert request["request_id"] == "trace-42.a:b"
    assert request["time"].endswith("Z")

    (decision,) = by(records, "authority.exchange")
    assert decision["message"] == "exchange issued"
    assert decision["decision"] == "issued"
    assert decision["agent_id"] == world.agent_id
    assert decision["delegation_id"] == world.delegation_id
    assert decision["grant_id"].startswith("grt")
    assert decision["request_id"] == "trace-42.a:b"

    text = lines.getvalue()
    # Never the token issued, the credential, the attestation, nor the body.
    for secret in (response.json()["access_token"], world.credential, form["actor_token"]):
        assert secret not in text
    assert "authorization_details" not in text


async def test_a_denied_exchange_logs_its_reason_code_and_grant(
    world: World, lines: io.StringIO
) -> None:
    response = await world.exchange(action="read")  # a tool action, not delegated
    assert response.status_code == 400, response.text
    request_id = response.headers["x-request-id"]

    records = parsed(lines)
    (decision,) = by(records, "authority.exchange")
    assert decision["message"] == "exchange denied"
    assert decision["decision"] == "denied"
    assert decision["reason"] == "action_not_delegated"
    assert decision["agent_id"] == world.agent_id
    assert decision["grant_id"].startswith("grt")
    assert decision["request_id"] == request_id
    (request,) = by(records, "authority.access")
    assert (request["status"], request["request_id"]) == (400, request_id)


async def test_a_replayed_attestation_names_the_replay_and_its_own_grant(
    world: World, lines: io.StringIO
) -> None:
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    assert (await world.exchange(attestation=attestation)).status_code == 200
    assert (await world.exchange(attestation=attestation, action="read")).status_code == 400

    issued, denied = by(parsed(lines), "authority.exchange")
    assert denied["reason"] == "attestation_replayed"
    assert denied["grant_id"] not in (None, issued["grant_id"])


@pytest.mark.parametrize(
    "presented",
    [
        "x" * 129,  # too long
        "two words",
        'quote"d',
        "new\nline",
        "é",
    ],
)
async def test_an_unsafe_request_id_is_replaced_by_a_fresh_one(
    world: World, lines: io.StringIO, presented: str
) -> None:
    response = await world.client.get(
        "/healthz", headers=[(b"x-request-id", presented.encode("utf-8"))]
    )
    fresh = response.headers["x-request-id"]
    assert fresh != presented
    assert len(fresh) == 32
    (request,) = by(parsed(lines), "authority.access")
    assert request["request_id"] == fresh
    assert presented not in lines.getvalue()


async def test_without_a_request_id_each_request_gets_its_own(
    world: World, lines: io.StringIO
) -> None:
    first = (await world.client.get("/healthz")).headers["x-request-id"]
    second = (await world.client.get("/healthz")).headers["x-request-id"]
    assert first != second


async def test_the_route_template_is_logged_never_the_path_nor_the_credentials(
    world: World, lines: io.StringIO
) -> None:
    response = await world.client.get(
        f"/v1/agents/{world.agent_id}?probe=secret-query", headers=world.auth(world.owner_key)
    )
    assert response.status_code in (200, 400), response.text
    basic = base64.b64encode(f"{world.server_id}:{world.server_secret}".encode()).decode()
    await world.client.post(
        "/oauth2/introspect", data={"token": "nope"}, headers={"Authorization": f"Basic {basic}"}
    )
    records = parsed(lines)
    routes = [r["route"] for r in by(records, "authority.access")]
    assert routes == ["/v1/agents/{agent_id}", "/oauth2/introspect"]
    text = lines.getvalue()
    for secret in (world.owner_key, world.server_secret, basic, "secret-query", world.agent_id):
        assert secret not in text
    (introspected,) = by(records, "authority.introspection")
    assert (introspected["active"], introspected["client_id"]) == (False, world.server_id)


async def test_a_revocation_has_its_line(world: World, lines: io.StringIO) -> None:
    token = (await world.exchange()).json()["access_token"]
    basic = base64.b64encode(f"{world.server_id}:{world.server_secret}".encode()).decode()
    response = await world.client.post(
        "/oauth2/revoke", data={"token": token}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200, response.text
    (revoked,) = by(parsed(lines), "authority.revocation")
    assert revoked["kind"] == "token"
    assert revoked["agent_id"] == world.agent_id
    assert token not in lines.getvalue()


async def test_a_call_awaiting_approval_logs_the_approval_never_its_auth_req_id(
    world: World, lines: io.StringIO
) -> None:
    from tests.integration.approvals.support import ask_pending, with_risky_tool

    await with_risky_tool(world)
    auth_req_id = await ask_pending(world)
    (decision,) = by(parsed(lines), "authority.exchange")
    assert decision["message"] == "exchange pending approval"
    assert (decision["decision"], decision["reason"]) == ("pending", "autonomy_too_low")
    assert decision["approval_id"]
    assert decision["agent_id"] == world.agent_id
    # The agent's polling handle is a bearer secret: it stays out of the logs.
    assert auth_req_id not in lines.getvalue()


async def test_an_unforeseen_error_is_answered_in_the_rfc_shape_with_its_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Starlette's own last resort answers plain text without the request id; the log
    line with the traceback and the answer share the id."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from authority.endpoints.request_log import RequestLog

    async def broken(request: Any) -> Any:
        raise RuntimeError("a bug")

    app = Starlette(routes=[Route("/boom", broken)], middleware=[Middleware(RequestLog)])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        with caplog.at_level(logging.INFO, logger="authority"):
            response = await http.get("/boom", headers={"X-Request-Id": "req-500"})
    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert response.headers["x-request-id"] == "req-500"
    (failure,) = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert failure.exc_info is not None
