"""The async and the sync agent clients against a scripted authority (``httpx.MockTransport``):
retries of 503 and 429, typed errors, ``ApprovalPending`` from the call; every test runs on
both clients, which must make the same requests and raise the same exceptions."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from joserfc.jwk import OKPKey

from authority.sdk import (
    NO_RETRIES,
    AccessDenied,
    AgentClient,
    ApprovalPending,
    AuthorityClientError,
    InsufficientScope,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    RetryPolicy,
    SyncAgentClient,
    TemporarilyUnavailable,
    TooManyRequests,
)
from authority.sdk.core import AccessToken
from authority.sdk.errors import (
    ExpiredToken,
    InvalidDPoPProof,
    InvalidMetadata,
    InvalidTarget,
    error_from_response,
)

ISSUER = "https://authority.test"
TOKEN = ISSUER + "/oauth2/token"
NOW = 1_800_000_000.0
KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
METADATA = {"issuer": ISSUER, "token_endpoint": TOKEN}
ISSUED = {"access_token": "at.one", "token_type": "Bearer", "expires_in": 60}
Answer = httpx.Response | Exception


def refusal(status: int, error: str, **headers: str) -> httpx.Response:
    body = {"error": error, "error_description": f"{error} described"}
    return httpx.Response(status, json=body, headers=headers)


class Harness:
    """One client (async or sync) and the scripted token endpoint it talks to."""

    def __init__(
        self,
        kind: str,
        script: list[Answer],
        *,
        retry: RetryPolicy | None = None,
        dpop: bool = False,
    ) -> None:
        self.kind = kind
        self.script: Iterator[Answer] = iter(script)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.now = NOW
        transport = httpx.MockTransport(self.handle)
        retry = retry or RetryPolicy(jitter=lambda: 1.0)
        dpop_key = OKPKey.generate_key("Ed25519") if dpop else None
        self.client: AgentClient | SyncAgentClient
        if kind == "async":

            async def sleep(seconds: float) -> None:
                self.sleeps.append(seconds)
                self.now += seconds

            self.client = AgentClient(
                ISSUER, "agt_1", KEY, "delegation.jwt",
                http=httpx.AsyncClient(transport=transport), dpop_key=dpop_key,
                clock=self.clock, retry=retry, sleep=sleep,
            )  # fmt: skip
        else:

            def sync_sleep(seconds: float) -> None:
                self.sleeps.append(seconds)
                self.now += seconds

            self.client = SyncAgentClient(
                ISSUER, "agt_1", KEY, "delegation.jwt",
                http=httpx.Client(transport=transport), dpop_key=dpop_key,
                clock=self.clock, retry=retry, sleep=sync_sleep,
            )  # fmt: skip

    def clock(self) -> float:
        return self.now

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json=METADATA)
        self.requests.append(request)
        answer = next(self.script)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def token(self, **kwargs: Any) -> AccessToken:
        args = ("github.issues.create", "acme/web", "create")
        if isinstance(self.client, AgentClient):
            return await self.client.token(*args, audience="https://rs.test", **kwargs)
        return self.client.token(*args, audience="https://rs.test", **kwargs)

    async def wait(self, pending: ApprovalPending) -> AccessToken:
        if isinstance(self.client, AgentClient):
            return await self.client.wait_for_approval(pending)
        return self.client.wait_for_approval(pending)

    def forms(self) -> list[dict[str, list[str]]]:
        return [parse_qs(r.content.decode()) for r in self.requests]

    def claims(self, name: str) -> list[dict[str, Any]]:
        """The decoded ``actor_token`` (attestation) or ``DPoP`` header of each request."""
        values = [
            r.headers["dpop"] if name == "dpop" else parse_qs(r.content.decode())[name][0]
            for r in self.requests
        ]
        return [jwt.decode(v, options={"verify_signature": False}) for v in values]


@pytest.fixture(params=["async", "sync"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def harness(kind: str) -> Callable[..., Harness]:
    def make(script: list[Answer], **kwargs: Any) -> Harness:
        return Harness(kind, script, **kwargs)

    return make


# --- retries ----------------------------------------------------------------------------------
async def test_a_503_is_retried_after_its_retry_after_with_a_fresh_attestation_and_proof(
    harness: Callable[..., Harness],
) -> None:
    """The authority spends the attestation's and the proof's jti: each attempt has new ones."""
    h = harness(
        [refusal(503, "temporarily_unavailable", **{"Retry-After": "2"}),
         refusal(429, "too_many_requests", **{"Retry-After": "1"}),
         httpx.Response(200, json={**ISSUED, "token_type": "DPoP"})],
        dpop=True,
    )  # fmt: skip
    token = await h.token()
    assert token.value == "at.one"
    assert h.sleeps == [2.0, 1.0]
    assert len({c["jti"] for c in h.claims("actor_token")}) == 3
    assert len({c["jti"] for c in h.claims("dpop")}) == 3
    # The attestation is made when the attempt is, so its iat follows the clock.
    assert [c["iat"] for c in h.claims("actor_token")] == [NOW, NOW + 2, NOW + 3]


async def test_a_retry_after_date_is_honoured(harness: Callable[..., Harness]) -> None:
    when = email.utils.formatdate(NOW + 4, usegmt=True)
    h = harness([refusal(429, "too_many_requests", **{"Retry-After": when}),
                 httpx.Response(200, json=ISSUED)])  # fmt: skip
    await h.token()
    assert h.sleeps == [4.0]


async def test_without_retry_after_the_client_backs_off(harness: Callable[..., Harness]) -> None:
    h = harness([httpx.Response(503), httpx.Response(503), httpx.Response(200, json=ISSUED)])
    await h.token()
    assert h.sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (lambda: refusal(400, "invalid_grant"), InvalidGrant),
        (lambda: refusal(400, "invalid_scope"), InvalidScope),
        (lambda: refusal(401, "invalid_client"), InvalidClient),
        (lambda: refusal(403, "access_denied"), AccessDenied),
        (lambda: refusal(400, "invalid_request"), InvalidRequest),
        (lambda: httpx.Response(500, text="boom"), AuthorityClientError),
    ],
)
async def test_a_refusal_is_never_retried(
    harness: Callable[..., Harness],
    answer: Callable[[], httpx.Response],
    raised: type[Exception],
) -> None:
    h = harness([answer()])
    with pytest.raises(raised):
        await h.token()
    assert len(h.requests) == 1
    assert h.sleeps == []


async def test_attempts_are_bounded_and_the_last_answer_is_raised(
    harness: Callable[..., Harness],
) -> None:
    busy = refusal(503, "temporarily_unavailable", **{"Retry-After": "1"})
    h = harness([busy] * 5, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(TemporarilyUnavailable) as raised:
        await h.token()
    assert len(h.requests) == 3
    assert h.sleeps == [1.0, 1.0]
    assert (raised.value.status, raised.value.retry_after) == (503, 1.0)
    assert raised.value.error == "temporarily_unavailable"


async def test_total_waiting_is_bounded(harness: Callable[..., Harness]) -> None:
    busy = refusal(429, "too_many_requests", **{"Retry-After": "4"})
    h = harness([busy] * 5, retry=RetryPolicy(max_attempts=10, max_total_delay=10))
    with pytest.raises(TooManyRequests):
        await h.token()
    assert h.sleeps == [4.0, 4.0]  # a third wait would make 12 s


async def test_no_retries_when_configured(harness: Callable[..., Harness]) -> None:
    h = harness([httpx.Response(503)], retry=NO_RETRIES)
    with pytest.raises(TemporarilyUnavailable):
        await h.token()
    assert len(h.requests) == 1


async def test_a_connection_never_opened_is_retried_a_lost_answer_is_not(
    harness: Callable[..., Harness],
) -> None:
    h = harness([httpx.ConnectError("refused"), httpx.Response(200, json=ISSUED)])
    assert (await h.token()).value == "at.one"
    # A read timeout may follow a token issued: asking again would issue a second one.
    h = harness([httpx.ReadTimeout("lost"), httpx.Response(200, json=ISSUED)])
    with pytest.raises(httpx.ReadTimeout):
        await h.token()
    assert len(h.requests) == 1


# --- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error", "cls"),
    [
        (400, "invalid_request", InvalidRequest),
        (401, "invalid_client", InvalidClient),
        (400, "invalid_grant", InvalidGrant),
        (400, "invalid_scope", InvalidScope),
        (400, "invalid_target", InvalidTarget),
        (400, "invalid_dpop_proof", InvalidDPoPProof),
        (403, "access_denied", AccessDenied),
        (400, "expired_token", ExpiredToken),
        (403, "insufficient_scope", InsufficientScope),
        (503, "temporarily_unavailable", TemporarilyUnavailable),
        (429, "too_many_requests", TooManyRequests),
        (400, "a_code_of_tomorrow", AuthorityClientError),
    ],
)
def test_each_rfc_error_has_its_class_and_keeps_its_code(
    status: int, error: str, cls: type
) -> None:
    body = json.dumps({"error": error, "error_description": "why"}).encode()
    raised = error_from_response(status, body)
    assert type(raised) is cls
    assert isinstance(raised, AuthorityClientError)
    assert (raised.error, raised.error_description, raised.status) == (error, "why", status)
    assert raised.description == "why"
    assert raised.retryable is (status in (429, 503))


def test_an_answer_without_an_error_body_keeps_its_status() -> None:
    raised = error_from_response(502, b"<html>bad gateway</html>")
    assert type(raised) is AuthorityClientError
    assert (raised.error, raised.status) == ("http_error", 502)
    assert type(error_from_response(503, b"")) is TemporarilyUnavailable


async def test_the_metadata_of_another_issuer_is_refused(kind: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**METADATA, "issuer": "https://evil.test"})

    transport = httpx.MockTransport(handler)

    async def metadata() -> None:
        if kind == "async":
            async with httpx.AsyncClient(transport=transport) as http:
                await AgentClient(ISSUER, "agt_1", KEY, "d", http=http).metadata()
        else:
            with httpx.Client(transport=transport) as sync_http:
                SyncAgentClient(ISSUER, "agt_1", KEY, "d", http=sync_http).metadata()

    with pytest.raises(InvalidMetadata):
        await metadata()


# --- approvals --------------------------------------------------------------------------------
PENDING = {"auth_req_id": "areq_1", "expires_in": 300, "interval": 2}


async def test_a_call_needing_approval_raises_from_the_call_then_polls(
    harness: Callable[..., Harness],
) -> None:
    h = harness([
        httpx.Response(200, json=PENDING),
        refusal(400, "authorization_pending"),
        refusal(400, "slow_down"),
        refusal(503, "temporarily_unavailable", **{"Retry-After": "1"}),
        httpx.Response(200, json=ISSUED),
    ])  # fmt: skip
    with pytest.raises(ApprovalPending) as pending:
        await h.token()
    assert pending.value.auth_req_id == "areq_1"
    token = await h.wait(pending.value)
    assert token.value == "at.one"
    # interval 2, 2, then 2 + 5 for slow_down; the 503 is retried after its Retry-After.
    assert h.sleeps == [2.0, 2.0, 7.0, 1.0]
    grants = [f["grant_type"][0] for f in h.forms()]
    assert grants[0].endswith("token-exchange")
    assert all(g == "urn:openid:params:grant-type:ciba" for g in grants[1:])


async def test_a_refused_approval_raises_access_denied(harness: Callable[..., Harness]) -> None:
    h = harness([refusal(403, "access_denied")])
    with pytest.raises(AccessDenied):
        await h.wait(ApprovalPending("areq_1", 300, 1))
    assert h.sleeps == [1.0]


async def test_request_raises_approval_pending_before_the_tool_is_called(kind: str) -> None:
    tool_calls: list[httpx.Request] = []

    def authority(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json=METADATA)
        return httpx.Response(200, json=PENDING)

    def tool(request: httpx.Request) -> httpx.Response:
        tool_calls.append(request)
        return httpx.Response(200)

    args: dict[str, Any] = {"tool": "deploy", "action": "run", "audience": "https://rs.test"}

    async def call() -> None:
        if kind == "async":
            async with (
                httpx.AsyncClient(transport=httpx.MockTransport(authority)) as http,
                httpx.AsyncClient(transport=httpx.MockTransport(tool)) as tools,
            ):
                agent = AgentClient(ISSUER, "agt_1", KEY, "d", http=http)
                await agent.request(tools, "POST", "https://rs.test/deploy", json={}, **args)
        else:
            with (
                httpx.Client(transport=httpx.MockTransport(authority)) as sync_http,
                httpx.Client(transport=httpx.MockTransport(tool)) as sync_tools,
            ):
                sync_agent = SyncAgentClient(ISSUER, "agt_1", KEY, "d", http=sync_http)
                sync_agent.request(sync_tools, "POST", "https://rs.test/deploy", json={}, **args)

    with pytest.raises(ApprovalPending):
        await call()
    assert tool_calls == []


# --- parity -----------------------------------------------------------------------------------
async def test_both_clients_send_the_same_requests() -> None:
    def script() -> list[Answer]:
        return [httpx.Response(503), httpx.Response(200, json=ISSUED)]

    sent = {}
    for kind in ("async", "sync"):
        h = Harness(kind, script(), dpop=True)
        await h.token(arguments={"title": "t"}, lifetime=30)
        forms = h.forms()
        for form in forms:
            form.pop("actor_token")  # signed afresh each time
        sent[kind] = (
            [(r.method, str(r.url), sorted(r.headers.keys() - {"user-agent"})) for r in h.requests],
            forms,
            h.sleeps,
            [sorted(c.keys()) for c in h.claims("actor_token")],
        )
    assert sent["async"] == sent["sync"]


def test_the_sync_client_makes_a_tool_call_with_its_token() -> None:
    seen: list[httpx.Request] = []

    def authority(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json=METADATA)
        detail = json.loads(parse_qs(request.content.decode())["authorization_details"][0])
        return httpx.Response(200, json={**ISSUED, "authorization_details": detail})

    def tool(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    with (
        httpx.Client(transport=httpx.MockTransport(authority)) as http,
        httpx.Client(transport=httpx.MockTransport(tool), base_url="https://rs.test") as tools,
    ):
        agent = SyncAgentClient(ISSUER, "agt_1", KEY, "d", http=http)
        auth = agent.auth("github.issues.create", "create", audience="https://rs.test")
        assert tools.post("/repos/acme/web/issues", json={}, auth=auth).status_code == 200
        answer = agent.request(
            tools, "POST", "/x", tool="t", action="a", audience="https://rs.test", json={}
        )
        assert answer.status_code == 200
    assert [r.headers["authorization"] for r in seen] == ["Bearer at.one"] * 2
