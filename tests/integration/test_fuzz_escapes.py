"""Inputs the fuzzers found escaping the documented rejections, refused cleanly now.

Each input is also in the seed corpus under ``tests/fuzz/corpus``, replayed by the fuzz
targets; these tests check what the client sees over HTTP.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from authority.context import Services
from authority.sdk.feed import MalformedEvent, RevocationEvent
from authority.sdk.revocations import FeedFollower, RevocationList
from authority.tokens.dpop import normalise_htu, verify_proof
from authority.tokens.inbound import JWTRejected, peek
from tests.revocation_support import REVOKE, add_server, issue
from tests.support import World


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def junk_jwt(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(header)}.{_b64(claims)}.{'A' * 86}"


def _claims(agent_id: str, now: float) -> dict[str, Any]:
    return {"iss": agent_id, "sub": agent_id, "aud": "x", "iat": int(now), "exp": int(now) + 30}


# --- 1: a JOSE header member of the wrong JSON type -----------------------------------------
@pytest.mark.parametrize("typ", [{}, [], ["JWT"], 1, True])
def test_peek_refuses_a_typ_that_is_not_a_string(typ: object) -> None:
    with pytest.raises(JWTRejected) as caught:
        peek(junk_jwt({"alg": "EdDSA", "kid": "k1", "typ": typ}, {"iss": "a"}))
    assert caught.value.reason == "jwt_malformed"


@pytest.mark.parametrize("member", ["kid", "cty", "jwk"])
def test_peek_refuses_other_header_members_of_the_wrong_type(member: str) -> None:
    with pytest.raises(JWTRejected):
        peek(junk_jwt({"alg": "EdDSA", member: ["x"]}, {"iss": "a"}))


@pytest.mark.parametrize("typ", [{}, ["JWT"]])
async def test_unhashable_typ_at_the_token_endpoint_is_invalid_client(
    world: World, typ: object, caplog: pytest.LogCaptureFixture
) -> None:
    attestation = junk_jwt(
        {"alg": "EdDSA", "kid": world.agent_key.kid, "typ": typ},
        _claims(world.agent_id, world.clock.now()),
    )
    for via in ("actor_token", "client_assertion"):
        response = await world.exchange(attestation=attestation, via=via)
        # An attestation sent as actor_token is a bad parameter, as client_assertion a
        # failed client authentication (the grant's existing mapping).
        expected = "invalid_request" if via == "actor_token" else "invalid_client"
        assert response.status_code in (400, 401), response.text
        assert response.json()["error"] == expected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_unhashable_typ_at_revocation_is_invalid_client(world: World) -> None:
    token = await issue(world)
    assertion = junk_jwt(
        {"alg": "EdDSA", "kid": world.agent_key.kid, "typ": {}},
        _claims(world.agent_id, world.clock.now()),
    )
    form = {
        "token": token,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    response = await world.client.post(REVOKE, data=form)
    # RFC 6749 §5.2: an assertion in the body is refused with 400, not 401.
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client"


async def test_unhashable_typ_from_a_private_key_jwt_server_is_invalid_client(
    world: World,
) -> None:
    server = await add_server(world, "https://other.example.test", method="private_key_jwt")
    assert server.key is not None
    assertion = junk_jwt(
        {"alg": "EdDSA", "kid": server.key.kid, "typ": []}, _claims(server.id, world.clock.now())
    )
    form = {
        "token": "x",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    for path in ("/oauth2/introspect", "/v1/revocations/feed"):
        response = await world.client.post(path, data=form)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"] == "invalid_client"


# --- 2: a DPoP htu, or a Host, that urlsplit cannot read -----------------------------------
def test_an_unreadable_url_is_a_bad_htu() -> None:
    with pytest.raises(JWTRejected) as caught:
        normalise_htu("http://[")
    assert caught.value.reason == "dpop_bad_htu"


async def test_dpop_htu_that_urlsplit_cannot_read_is_invalid_dpop_proof(world: World) -> None:
    proof = world.agent_key.dpop_proof(world.clock.now(), url="http://[")
    response = await world.exchange(headers={"DPoP": proof})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_dpop_proof"


def test_a_host_header_of_an_open_bracket_is_a_rejected_proof(world: World) -> None:
    # The middleware builds the URL from the Host header: "http://[/path".
    now = world.clock.now()
    proof = world.agent_key.dpop_proof(now, url="http://tools.example.test/x")
    with pytest.raises(JWTRejected):
        verify_proof(proof, method="POST", url="http://[/x", now=int(now), skew=5, max_age=60)


# --- 4: a malformed feed event fails the follower closed ------------------------------------
MALFORMED_EVENTS = [
    '{"id": 3, "kind": "token", "jti": "at_1", "time": 1, "expires_at": "x"}',
    '{"id": 3, "kind": "token", "jti": "at_1", "time": 1, "expires_at": Infinity}',
    '{"id": 3, "kind": "token", "jti": "at_1", "time": 1, "expires_at": 1e999}',
    '{"id": "3", "kind": "token", "jti": "at_1", "time": 1}',
    '{"id": 3, "kind": "token", "time": 1}',
    '{"id": 3, "kind": "agent", "agent_id": ["a"], "time": 1}',
    '{"id": 3, "kind": "someday", "time": 1}',
    '{"id": 3, "kind": "token", "jti": "at_1", "time": true}',
    "[1]",
    "not json",
]


@pytest.mark.parametrize("data", MALFORMED_EVENTS)
def test_malformed_events_raise_only_malformed_event(data: str) -> None:
    with pytest.raises(MalformedEvent):
        RevocationEvent.from_json(data)


@pytest.mark.parametrize(
    "event",
    [
        {"kind": "token", "jti": "at_1", "time": 1, "expires_at": "x"},
        {"kind": "token", "jti": "at_1", "time": 1, "expires_at": float("inf")},
    ],
)
def test_revocation_list_refuses_a_malformed_event_and_changes_nothing(
    event: dict[str, Any],
) -> None:
    revoked = RevocationList()
    with pytest.raises(MalformedEvent):
        revoked.apply(event, 100)
    assert revoked == RevocationList()


def _feed(*events: str) -> bytes:
    blocks = [f"id: {i + 1}\nevent: revocation\ndata: {data}\n\n" for i, data in enumerate(events)]
    # The catch-up ends with "ready": a follower that reaches it is caught up.
    return ("id: 0\n\n" + "".join(blocks) + "event: ready\ndata: \n\n").encode()


async def test_the_follower_stops_before_a_malformed_event_and_is_not_healthy() -> None:
    good = '{"id": 1, "kind": "token", "jti": "at_1", "time": 1}'
    bad = '{"id": 2, "kind": "token", "jti": "at_2", "time": 1, "expires_at": "x"}'
    after = '{"id": 3, "kind": "token", "jti": "at_3", "time": 1}'
    seen: list[str | None] = []
    waits: list[float] = []

    class Stop(Exception):
        pass

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("last-event-id"))
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, content=_feed(good, bad, after))

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise Stop

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        follower = FeedFollower("http://authority.test/feed", http, clock=lambda: 10.0, sleep=sleep)
        with pytest.raises(Stop):
            await follower.follow()
        # The good event before it is applied; the bad one is not skipped (the follower
        # resumes before it, not after), and nothing past it is trusted.
        assert "at_1" in follower.revoked.tokens
        assert "at_3" not in follower.revoked.tokens
        assert seen == [None, "1"]
        assert not follower.healthy


# --- 6: a client hanging up mid-body is a normal event --------------------------------------
async def test_a_client_hanging_up_mid_body_is_counted_not_an_error(
    app: Starlette, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    messages: Iterator[dict[str, Any]] = iter(
        [
            {"type": "http.request", "body": b"grant_type=", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/oauth2/token",
        "raw_path": b"/oauth2/token",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8400"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"100"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8400),
    }
    with caplog.at_level(logging.DEBUG):
        await app(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in caplog.records if "disconnected" in r.getMessage()] == [
        logging.DEBUG
    ]
    assert services.metrics.client_disconnects._value.get() == 1
