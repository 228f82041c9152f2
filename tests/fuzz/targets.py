"""Fuzz targets: every function that takes outside bytes, fed arbitrary bytes.

Each target takes ``bytes`` and lets only its module's documented rejection types out
(caught here); anything else escaping is a finding. Structured inputs (a JWT's header,
claims and signature; a URL) are split on NUL bytes so that mutations reach the JSON
itself rather than dying in base64. ``python -m tests.fuzz.run TARGET`` runs one under
atheris; ``tests/fuzz/test_fuzz_short.py`` replays the corpus and runs each briefly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from functools import cache
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.jwk import OKPKey
from starlette.requests import Request

from authority.errors import AuthorityError
from authority.ledger.checkpoints import InvalidCheckpoint, verify_checkpoint
from authority.ledger.verify import VerificationFailed, checkpoint_items, verify_export
from authority.management.inputs import Body, parse
from authority.policy.patterns import resource_matches
from authority.sdk.feed import MalformedEvent, RevocationEvent, parse_sse
from authority.sdk.middleware import AuthorityMiddleware, Refusal, ToolRoute, _credentials
from authority.sdk.revocations import RevocationList
from authority.tokens.dpop import normalise_htu, verify_proof
from authority.tokens.inbound import JWTRejected, peek, verify_attestation
from authority.tokens.jose import registry

Target = Callable[[bytes], None]
NOW = 1_700_000_000
ISSUER = "https://authority.fuzz"
_LOOP = asyncio.new_event_loop()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _jwt(data: bytes) -> str:
    """header JSON NUL claims JSON NUL signature -> a compact JWS (signature base64url'd)."""
    header, _, rest = data.partition(b"\x00")
    claims, _, signature = rest.partition(b"\x00")
    return f"{_b64(header)}.{_b64(claims)}.{_b64(signature)}"


@cache
def _agent_key() -> tuple[OKPKey, str]:
    key = OKPKey.import_key(Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
    public = {**key.as_dict(private=False), "kid": "k1"}
    return key, json.dumps({"keys": [public]})


def sign(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS signed with the fuzz agent key (for corpus entries that pass the signature)."""
    key, _ = _agent_key()
    return jws.serialize_compact(
        header, json.dumps(claims).encode(), key, registry=registry(["EdDSA"])
    )


# --- JWTs ----------------------------------------------------------------------------------
def jwt_peek(data: bytes) -> None:
    with contextlib.suppress(JWTRejected):
        peek(_text(data))
    with contextlib.suppress(JWTRejected):
        peek(_jwt(data))


def attestation(data: bytes) -> None:
    """Peek and verify an attestation of agent ``agt_1`` (key ``k1``), as every grant does."""
    _, jwks = _agent_key()
    for token in (_jwt(data), _text(data)):
        with contextlib.suppress(JWTRejected):
            verify_attestation(
                peek(token),
                agent_id="agt_1",
                jwks_json=jwks,
                audiences=(ISSUER,),
                now=NOW,
                skew=5,
                max_lifetime=60,
                max_keys_without_kid=2,
            )


def dpop(data: bytes) -> None:
    """A proof (header NUL claims NUL sig) NUL the request URL it is checked against."""
    proof_part, _, url = data.rpartition(b"\x00")
    url_text = _text(url) or ISSUER + "/oauth2/token"
    for proof in (_jwt(proof_part), _text(proof_part)):
        with contextlib.suppress(JWTRejected):
            verify_proof(
                proof,
                method="POST",
                url=url_text,
                now=NOW,
                skew=5,
                max_age=60,
                access_token="at",
            )
    with contextlib.suppress(JWTRejected):
        normalise_htu(_text(data))


# --- the OAuth endpoints' bodies -------------------------------------------------------------
def _request(body: bytes, content_type: bytes, query: bytes = b"") -> Request:
    chunks = [body[: len(body) // 2], body[len(body) // 2 :]]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/oauth2/token",
        "query_string": query,
        "headers": [(b"content-type", content_type)],
    }
    return Request(scope, receive)


def form(data: bytes) -> None:
    from authority.endpoints.forms import TOKEN_FORMS
    from authority.endpoints.http import read_form

    async def run() -> None:
        parsed = await read_form(
            _request(data, b"application/x-www-form-urlencoded"), 65536, schema=TOKEN_FORMS
        )
        for key in ("grant_type", "resource", "client_id"):
            parsed.get(key)
            parsed.get_all(key)

    with contextlib.suppress(AuthorityError):
        _LOOP.run_until_complete(run())


def json_body(data: bytes) -> None:
    from authority.endpoints.http import read_json

    with contextlib.suppress(AuthorityError):
        _LOOP.run_until_complete(read_json(_request(data, b"application/json"), 65536))


def authorization_details(data: bytes) -> None:
    """RFC 9396 details NUL a resource indicator, then the pattern matcher on both."""
    from authority.endpoints.token import parse_tool_call

    details, _, resource = data.partition(b"\x00")
    with contextlib.suppress(AuthorityError):
        parse_tool_call(_text(details), _text(resource), max_arguments_bytes=16 * 1024)
    pattern, _, name = _text(resource).partition("\x01")
    resource_matches(pattern, name)


@cache
def _body_models() -> list[type[Body]]:
    import importlib
    import pkgutil

    import authority.management

    for module in pkgutil.iter_modules(authority.management.__path__):
        importlib.import_module(f"authority.management.{module.name}")
    importlib.import_module("authority.grants.delegations")
    importlib.import_module("authority.approvals.webhooks")
    importlib.import_module("authority.recordings.submission")
    found: list[type[Body]] = []
    todo = list(Body.__subclasses__())
    while todo:
        model = todo.pop()
        found.append(model)
        todo.extend(model.__subclasses__())
    return sorted(found, key=lambda m: m.__qualname__)


def v1_bodies(data: bytes) -> None:
    """Every /v1 body model, on the JSON object a request would carry (first byte: model)."""
    from authority.endpoints.http import parse_json_object

    if not data:
        return
    models = _body_models()
    try:
        value = parse_json_object(data[1:])
        parse(models[data[0] % len(models)], value)
    except AuthorityError:
        pass


def cursor(data: bytes) -> None:
    from authority.management.paging import decode_cursor

    with contextlib.suppress(AuthorityError):
        decode_cursor(_paging_services(), "agents", _text(data))


@cache
def _paging_services() -> Any:
    from authority.app import build_services
    from authority.settings import Settings

    settings = Settings(secret_key="f" * 43, auto_migrate=False, issuer=ISSUER)
    return build_services(settings)


# --- the ledger export and its checkpoints -------------------------------------------------
@cache
def _ledger_keys() -> tuple[Any, str]:
    from joserfc.jwk import KeySet

    key, _ = _agent_key()
    checkpoint = jws.serialize_compact(
        {"alg": "EdDSA", "kid": "k1", "typ": "checkpoint+jwt"},
        json.dumps(
            {"iss": ISSUER, "iat": NOW, "tree_size": 1_000_000, "root_hash": _b64(b"\x00" * 32)}
        ).encode(),
        key,
        registry=registry(["EdDSA"]),
    )
    public = OKPKey.import_key({**key.as_dict(private=False), "kid": "k1"})
    return KeySet([public]), checkpoint


def ledger_export(data: bytes) -> None:
    """Export lines (bytes, as read from a file) against a checkpoint beyond them."""
    keys, checkpoint = _ledger_keys()

    async def lines() -> AsyncIterator[bytes]:
        for line in data.split(b"\n"):
            yield line

    with contextlib.suppress(VerificationFailed):
        _LOOP.run_until_complete(verify_export(lines(), [{"checkpoint": checkpoint}], keys))


def ledger_checkpoints(data: bytes) -> None:
    """A checkpoints document, as ``authority ledger verify`` reads it, and one JWS."""
    keys, _ = _ledger_keys()
    with contextlib.suppress(InvalidCheckpoint):
        verify_checkpoint(_jwt(data), keys)
    try:
        document = json.loads(data)
        from authority.ledger.verify import prepare_checkpoints

        prepare_checkpoints(checkpoint_items(document), keys)
    except (ValueError, RecursionError, VerificationFailed):
        pass


# --- call records (the gateway's) and the recordings an auditor verifies ---------------------
def call_records(data: bytes) -> None:
    """A gateway's call record as the authority reads it, and a recordings document as
    ``authority ledger verify --recordings`` does."""
    from authority.endpoints.http import parse_json_object
    from authority.ledger.verify import Report
    from authority.ledger.verify_recordings import (
        RecordingsCheck,
        UnreadableRecordings,
        parse_recordings,
    )
    from authority.recordings.submission import checked

    with contextlib.suppress(AuthorityError):
        checked(parse_json_object(data), 1024)
    try:
        check = RecordingsCheck(parse_recordings(json.loads(data)))
        check.finish(Report(entries=1_000_000))
    except (ValueError, RecursionError, UnreadableRecordings, VerificationFailed):
        pass


# --- the SDK ---------------------------------------------------------------------------------
def feed(data: bytes) -> None:
    """An SSE stream: every event is parsed and applied, or refused as ``MalformedEvent``."""

    async def lines() -> AsyncIterator[str]:
        for line in _text(data).splitlines():
            yield line

    async def run() -> None:
        revoked = RevocationList()
        async for message in parse_sse(lines(), "", lambda _: None):
            with contextlib.suppress(MalformedEvent):
                revoked.apply(RevocationEvent.from_json(message.data), NOW)
        revoked.forget_expired(NOW)

    _LOOP.run_until_complete(run())
    # MalformedEvent is a ValueError, as is bad JSON.
    with contextlib.suppress(ValueError, RecursionError):
        RevocationList().apply(json.loads(data), NOW)


@cache
def _middleware() -> AuthorityMiddleware:
    _, jwks = _agent_key()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=jwks.encode())

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    routes = [
        ToolRoute("POST", "/repos/{org}/{repo}/issues", "gh.issues", "create", "{org}/{repo}")
    ]
    return AuthorityMiddleware(
        _noop_app, issuer=ISSUER, audience="https://rs", routes=routes, http=http, use_feed=False
    )


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    return None


def middleware(data: bytes) -> None:
    """Method NUL path NUL Authorization NUL DPoP NUL Host: the route and header handling."""
    fields = data.split(b"\x00")
    fields += [b""] * (5 - len(fields))
    method, path, authorization, proof, host = fields[:5]
    _credentials(authorization.decode("latin-1"))
    headers = [(b"authorization", authorization), (b"dpop", proof), (b"host", host)]
    scope = {
        "type": "http",
        "method": method.decode("latin-1"),
        "path": _text(path),
        "headers": [(k, v) for k, v in headers if v],
        "scheme": "http",
    }
    with contextlib.suppress(Refusal):
        _LOOP.run_until_complete(_middleware()._authorise(scope))


def gateway_messages(data: bytes) -> None:
    """One POST body, SSE bytes and a routing header as the gateway reads them."""
    from authority.gateway.jsonrpc import (
        EventTooLarge,
        RpcRefusal,
        SseEvents,
        classify,
        decode_header_value,
    )
    from authority.gateway.streams import Scrubber

    with contextlib.suppress(RpcRefusal):
        message = classify(data)
        _ = (message.callee, message.arguments)
    events = SseEvents(4096)
    with contextlib.suppress(EventTooLarge):
        for half in (data[: len(data) // 2], data[len(data) // 2 :]):
            for event in events.feed(half):
                event.with_data(b"{}")
        list(events.rest())
    decode_header_value(data.decode("latin-1"))
    scrubber = Scrubber([data[:8]] if len(data) >= 8 else [])
    out = scrubber.feed(data[:3]) + scrubber.feed(data[3:]) + scrubber.finish()
    if len(data) >= 8 and data[:8] in out and data[:8] not in b"[redacted]":
        raise AssertionError("a secret passed the scrubber")


TARGETS: dict[str, Target] = {
    "jwt_peek": jwt_peek,
    "attestation": attestation,
    "dpop": dpop,
    "form": form,
    "json_body": json_body,
    "authorization_details": authorization_details,
    "v1_bodies": v1_bodies,
    "cursor": cursor,
    "ledger_export": ledger_export,
    "ledger_checkpoints": ledger_checkpoints,
    "call_records": call_records,
    "feed": feed,
    "middleware": middleware,
    "gateway_messages": gateway_messages,
}
