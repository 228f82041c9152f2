"""The gateway's byte handling: secrets stripped across chunk boundaries, SSE events split
whatever the chunking, one JSON-RPC message per body, the upstream's OAuth credential."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from authority.gateway.config import Credential, SecretRef
from authority.gateway.credentials import (
    UpstreamCredential,
    UpstreamCredentialUnavailable,
)
from authority.gateway.jsonrpc import (
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcRefusal,
    SseEvents,
    classify,
    decode_header_value,
)
from authority.gateway.streams import Scrubber, Tap, request_headers, response_headers

SECRET = b"s3cr3t-upstream-credential"


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


@given(
    st.binary(max_size=200),
    st.binary(max_size=200),
    st.lists(st.integers(min_value=0, max_value=500), max_size=8),
)
def test_a_secret_is_stripped_however_the_stream_is_cut(
    before: bytes, after: bytes, cuts: list[int]
) -> None:
    data = before + SECRET + after + SECRET
    scrubber = Scrubber([SECRET])
    out = b"".join(scrubber.feed(p) for p in _split(data, cuts)) + scrubber.finish()
    assert SECRET not in out
    assert out == Scrubber([SECRET]).whole(data)


def test_the_tap_digests_the_whole_body_and_keeps_a_bounded_head() -> None:
    tap = Tap(4)
    for chunk in (b"hello ", b"world"):
        tap.feed(chunk)
    recorded = tap.recorded()
    expected = base64.urlsafe_b64encode(hashlib.sha256(b"hello world").digest()).rstrip(b"=")
    assert recorded.digest == "sha-256:" + expected.decode()
    assert (recorded.size, recorded.head, recorded.truncated) == (11, b"hell", True)


def test_hop_by_hop_and_the_agents_credentials_are_not_forwarded() -> None:
    scope: dict[str, Any] = {
        "headers": [
            (b"authorization", b"Bearer agent-token"),
            (b"dpop", b"proof"),
            (b"connection", b"keep-alive, x-private"),
            (b"x-private", b"1"),
            (b"te", b"trailers"),
            (b"x-api-key", b"agent-forged"),
            (b"mcp-session-id", b"abc"),
        ]
    }
    forwarded = dict(request_headers(scope, drop=["X-Api-Key"]))
    assert forwarded == {"mcp-session-id": "abc", "accept-encoding": "identity"}
    back = response_headers(
        [("Content-Length", "3"), ("X-Echo", "key=" + SECRET.decode()), ("Upgrade", "h2c")],
        Scrubber([SECRET]),
    )
    assert back == [(b"x-echo", b"key=[redacted]")]


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=10), st.booleans())
def test_events_are_the_same_whatever_the_chunks(cuts: list[int], crlf: bool) -> None:
    newline = b"\r\n" if crlf else b"\n"
    stream = newline.join(
        [
            b"id: 1",
            b'data: {"a":1}',
            b"",
            b": ping",
            b"",
            b"event: message",
            b"data: x",
            b"data: y",
            b"",
            b"",
        ]
    )
    events = SseEvents(1024)
    found = [e for piece in _split(stream, cuts) for e in events.feed(piece)]
    found += list(events.rest())
    assert [e.data for e in found] == [b'{"a":1}', None, b"x\ny"]
    assert found[0].with_data(b"{}") == b"id: 1\ndata: {}\n\n"


def test_an_oversized_event_is_refused() -> None:
    from authority.gateway.jsonrpc import EventTooLarge

    events = SseEvents(16)
    with pytest.raises(EventTooLarge):
        list(events.feed(b"data: " + b"x" * 64))


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{", 400, PARSE_ERROR),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', 400, INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"tasks/get"}', 404, METHOD_NOT_FOUND),
        (b'{"jsonrpc":"2.0","method":"notifications/anything"}', 400, METHOD_NOT_FOUND),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', 400, INVALID_REQUEST),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', 400, INVALID_REQUEST),
        (b'"ping"', 400, INVALID_REQUEST),
    ],
)
def test_what_is_refused_before_anything_is_forwarded(body: bytes, status: int, code: int) -> None:
    with pytest.raises(RpcRefusal) as refused:
        classify(body)
    assert (refused.value.status, refused.value.code) == (status, code)


def test_a_call_and_what_its_digest_is_over() -> None:
    call = classify(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": "a",
                "method": "tools/call",
                "params": {"name": "create_issue", "arguments": {"repo": "acme/web"}},
            }
        ).encode()
    )
    assert (call.kind, call.callee, call.arguments) == (
        "request",
        "create_issue",
        {"repo": "acme/web"},
    )
    read = classify(
        b'{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}}'
    )
    assert read.arguments == {"uri": "file:///a"}
    empty = classify(b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x"}}')
    assert empty.arguments == {}
    response = classify(b'{"jsonrpc":"2.0","id":9,"result":{}}')
    assert response.kind == "response"


def test_routing_header_values_decode_like_the_clients_encode() -> None:
    encoded = "=?base64?" + base64.b64encode("créer".encode()).decode() + "?="
    assert decode_header_value(encoded) == "créer"
    assert decode_header_value("plain") == "plain"
    assert decode_header_value("=?base64?!!!?=") is None


async def test_the_oauth_credential_is_fetched_once_until_it_nears_expiry() -> None:
    grants: list[dict[str, str]] = []
    now = [1000.0]

    def token_endpoint(request: httpx2.Request) -> httpx2.Response:
        form = dict(x.split("=") for x in request.content.decode().split("&"))
        grants.append(form)
        assert request.headers["authorization"].startswith("Basic ")
        return httpx2.Response(200, json={"access_token": f"at-{len(grants)}", "expires_in": 120})

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(token_endpoint))
    config = Credential(
        type="oauth2",
        client_id="gateway",
        token_url="https://idp.example/token",
        secret=SecretRef(value="client-secret"),
        scope="repo",
    )
    credential = UpstreamCredential(config, http, clock=lambda: now[0])
    assert await credential.header() == ("Authorization", "Bearer at-1")
    now[0] += 60
    assert await credential.header() == ("Authorization", "Bearer at-1")
    now[0] += 31  # within REFRESH_MARGIN of expiry
    assert await credential.header() == ("Authorization", "Bearer at-2")
    assert [g["grant_type"] for g in grants] == ["client_credentials", "client_credentials"]
    assert b"at-2" in credential.secrets() and b"client-secret" in credential.secrets()
    await http.aclose()


async def test_a_token_endpoint_that_refuses_forwards_nothing() -> None:
    http = httpx2.AsyncClient(
        transport=httpx2.MockTransport(lambda r: httpx2.Response(401, json={}))
    )
    config = Credential(
        type="oauth2",
        client_id="g",
        token_url="https://idp.example/token",
        secret=SecretRef(value="s"),
    )
    with pytest.raises(UpstreamCredentialUnavailable):
        await UpstreamCredential(config, http).header()
    await http.aclose()


def test_basic_credentials_and_their_echoes() -> None:
    config = Credential(type="basic", username="bot", secret=SecretRef(value="pw-123456"))
    credential = UpstreamCredential(config, httpx2.AsyncClient())
    encoded = base64.b64encode(b"bot:pw-123456")
    assert set(credential.secrets()) == {b"pw-123456", encoded}
