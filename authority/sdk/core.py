"""The agent SDK's protocol without I/O: RFC 8414 discovery, the RFC 8693 exchange with an
RFC 7523 attestation (and an RFC 9449 proof), OpenID CIBA polling, retries and errors.

Each operation is a generator ("flow") that yields what it needs done, ``Send(request)``
or ``Sleep(seconds)``, and receives the response (or the connection error) back; the
async client (``AgentClient``) and the sync one (``SyncAgentClient``) in
``authority.sdk.agent`` only run these steps with their own HTTP client and sleep, so
both make the same requests, retry the same way and raise the same exceptions.

Every attempt, first or retried, is built afresh: the attestation's ``jti`` and the DPoP
proof's ``jti`` are single use (the authority spends both in the write that issues the
token, ``authority.grants.issuance``), so resending the same ones after a 503 that came
after the authority had spent them would be refused as a replay.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authority import protocol
from authority.protocol import access_token_hash
from authority.sdk.arguments import canonical
from authority.sdk.errors import (
    ApprovalPending,
    AuthorityClientError,
    AuthorizationPending,
    InvalidMetadata,
    SlowDown,
    error_from_response,
)
from authority.sdk.jws import registry
from authority.sdk.retry import RetryPolicy, parse_retry_after

TOKEN_EXCHANGE = protocol.GRANT_TOKEN_EXCHANGE
CIBA = protocol.GRANT_CIBA
JWT_TYPE = protocol.JWT_TOKEN_TYPE
ACCESS_TOKEN = protocol.ACCESS_TOKEN_TYPE
ATTESTATION_LIFETIME = 30
#: CIBA §11: "slow_down ... the interval MUST be increased by at least 5 seconds".
SLOW_DOWN_STEP = 5

PrivateKey = OKPKey | ECKey | RSAKey
_ALG_FOR = {("OKP", "Ed25519"): "EdDSA", ("EC", "P-256"): "ES256", ("EC", "P-384"): "ES384"}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    token_type: str  # "Bearer" or "DPoP"
    expires_at: float
    authorization_details: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Send:
    """Send this request; the flow gets the ``httpx.Response`` or the connection error."""

    request: httpx.Request


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


Step = Send | Sleep
#: What a transport sends back into a flow after a ``Send``.
Outcome = httpx.Response | httpx.TransportError | None
Flow = Generator[Step, Outcome, T]

#: Connection errors that mean the request never left: safe to retry.
CONNECT_ERRORS: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError, httpx.ConnectTimeout)


def algorithm(key: PrivateKey) -> str:
    if isinstance(key, RSAKey):
        return "PS256"
    alg = _ALG_FOR.get((key.key_type, str(key.as_dict().get("crv"))))
    if alg is None:
        raise ValueError("unsupported agent key: use Ed25519, P-256, P-384 or RSA")
    return alg


def tool_call_detail(
    tool: str, resource: str, action: str, arguments: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The RFC 9396 ``tool_call`` detail; arguments that cannot be bound are refused here."""
    detail: dict[str, Any] = {"type": "tool_call", "tool": tool, "resource": resource}
    detail["action"] = action
    if arguments is not None:
        canonical(arguments)  # refused before any request if JSON cannot carry it exactly
        detail[protocol.DETAIL_ARGUMENTS] = dict(arguments)
    return detail


#: Where a workload-identity agent's platform tokens come from (a SPIFFE JWT-SVID, a
#: Kubernetes service-account token, a CI job's OIDC token, with this authority as their
#: audience): called once for every request sent, since the authority spends each one.
PlatformToken = Callable[[], str]


class AgentProtocol:
    """One agent's side of the protocol: how it proves itself, its delegation, what it
    sends and reads.

    An agent proves itself with its own ``key`` (a fresh attestation per request), with
    a ``platform_token`` (workload identity: the token is the ``actor_token`` and
    ``client_id`` names the agent), or with both where its owner requires both (the
    attestation as RFC 7523 ``client_assertion``, the platform token as ``actor_token``).
    """

    def __init__(
        self,
        issuer: str,
        agent_id: str,
        key: PrivateKey | None,
        delegation: str,
        *,
        dpop_key: PrivateKey | None,
        clock: Callable[[], float],
        retry: RetryPolicy,
        platform_token: PlatformToken | None = None,
    ) -> None:
        if key is None and platform_token is None:
            raise ValueError("an agent proves itself with its key, a platform token, or both")
        if key is not None and not key.is_private:
            raise ValueError("the agent key must include its private part")
        self.issuer = issuer.rstrip("/")
        self.agent_id = agent_id
        self.delegation = delegation
        self.key = key
        self.platform_token = platform_token
        self.alg = algorithm(key) if key is not None else None
        self._registry = registry([self.alg]) if self.alg is not None else None
        self.dpop_key = dpop_key
        self.dpop_alg = algorithm(dpop_key) if dpop_key is not None else None
        self.clock = clock
        self.retry = retry
        self.cached_metadata: dict[str, Any] | None = None

    # --- proofs ---------------------------------------------------------------------------
    def attestation(self, audience: str) -> str:
        """A fresh, single-use proof that this agent holds its key (RFC 7523 §3)."""
        if self.key is None or self.alg is None:
            raise ValueError("this agent has no key of its own: it proves itself by platform")
        now = int(self.clock())
        claims = {
            "iss": self.agent_id,
            "sub": self.agent_id,
            "aud": audience,
            "iat": now,
            "exp": now + ATTESTATION_LIFETIME,
            "jti": secrets.token_urlsafe(16),
        }
        header = {"alg": self.alg, "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, registry=self._registry)

    def proof_form(self) -> dict[str, str]:
        """The members that prove who is asking, fresh for one request."""
        if self.platform_token is None:
            return {"actor_token": self.attestation(self.issuer), "actor_token_type": JWT_TYPE}
        form = {
            "actor_token": self.platform_token(),
            "actor_token_type": JWT_TYPE,
            "client_id": self.agent_id,
        }
        if self.key is not None:
            form["client_assertion_type"] = protocol.JWT_BEARER_ASSERTION
            form["client_assertion"] = self.attestation(self.issuer)
        return form

    def dpop_proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A DPoP proof for one HTTP request (RFC 9449 §4.2)."""
        if self.dpop_key is None or self.dpop_alg is None:
            raise ValueError("this client has no DPoP key")
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url.split("?", 1)[0].split("#", 1)[0],
            "iat": int(self.clock()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        header = {
            "alg": self.dpop_alg,
            "typ": protocol.DPOP_TYP,
            "jwk": self.dpop_key.as_dict(private=False),
        }
        return jwt.encode(header, claims, self.dpop_key, registry=registry([self.dpop_alg]))

    def call_headers(self, token: AccessToken, method: str, url: str) -> dict[str, str]:
        """``Authorization`` (and ``DPoP``) for sending ``token`` with one request."""
        headers = {"Authorization": f"{token.token_type} {token.value}"}
        if token.token_type == "DPoP":
            headers["DPoP"] = self.dpop_proof(method, url, token.value)
        return headers

    # --- flows ----------------------------------------------------------------------------
    def send(self, build: Callable[[], httpx.Request]) -> Flow[httpx.Response]:
        """One request under the retry policy; ``build`` makes each attempt afresh."""
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            outcome = yield Send(build())
            if isinstance(outcome, httpx.Response):
                status: int | None = outcome.status_code
                headers: Mapping[str, str] | None = outcome.headers
            elif isinstance(outcome, CONNECT_ERRORS):
                status, headers = None, None
            elif isinstance(outcome, httpx.TransportError):
                raise outcome  # it may have reached the authority: never resent
            else:
                raise TypeError("a transport sends back a response or its error")
            wait = self.retry.delay(
                attempt=attempt, waited=waited, status=status, headers=headers, now=self.clock()
            )
            if wait is None:
                if isinstance(outcome, httpx.TransportError):
                    raise outcome
                return outcome
            yield Sleep(wait)
            waited += wait

    def metadata(self) -> Flow[dict[str, Any]]:
        """The authority's RFC 8414 metadata, fetched once."""
        if self.cached_metadata is None:
            url = self.issuer + protocol.OAUTH_AUTHORIZATION_SERVER_PATH
            response = yield from self.send(lambda: httpx.Request("GET", url))
            metadata = self.json_or_raise(response)
            if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
                # RFC 8414 §3.3: the issuer in the document MUST match the one configured.
                raise InvalidMetadata("invalid_metadata", "issuer mismatch", response.status_code)
            if not isinstance(metadata.get("token_endpoint"), str):
                raise InvalidMetadata("invalid_metadata", "no token_endpoint", 200)
            self.cached_metadata = metadata
        return self.cached_metadata

    def token(
        self,
        tool: str,
        resource: str,
        action: str,
        *,
        audience: str,
        lifetime: int | None,
        arguments: Mapping[str, Any] | None,
    ) -> Flow[AccessToken]:
        detail = tool_call_detail(tool, resource, action, arguments)
        details = json.dumps([detail], allow_nan=False)
        endpoint = str((yield from self.metadata())["token_endpoint"])

        def build() -> httpx.Request:
            form = {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": self.delegation,
                "subject_token_type": JWT_TYPE,
                **self.proof_form(),
                "requested_token_type": ACCESS_TOKEN,
                "resource": audience,
                "authorization_details": details,
            }
            if lifetime is not None:
                form["expires_in"] = str(lifetime)
            return self._post(endpoint, form)

        response = yield from self.send(build)
        return self.read_token(response)

    def wait_for_approval(self, pending: ApprovalPending) -> Flow[AccessToken]:
        endpoint = str((yield from self.metadata())["token_endpoint"])
        interval = max(1, pending.interval)

        def build() -> httpx.Request:
            form = {
                "grant_type": CIBA,
                "auth_req_id": pending.auth_req_id,
                **self.proof_form(),
            }
            return self._post(endpoint, form)

        while True:
            yield Sleep(interval)
            response = yield from self.send(build)
            try:
                return self.read_token(response)
            except SlowDown:
                interval += SLOW_DOWN_STEP
            except AuthorizationPending:
                pass

    def _post(self, endpoint: str, form: dict[str, str]) -> httpx.Request:
        headers = {}
        if self.dpop_key is not None:
            headers["DPoP"] = self.dpop_proof("POST", endpoint)
        return httpx.Request("POST", endpoint, data=form, headers=headers)

    # --- reading answers ------------------------------------------------------------------
    def raise_for_error(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock())
        raise error_from_response(response.status_code, response.content, retry_after=retry_after)

    def json_or_raise(self, response: httpx.Response) -> Any:
        self.raise_for_error(response)
        try:
            return response.json()
        except ValueError:
            raise AuthorityClientError(
                "invalid_response", "not JSON", response.status_code
            ) from None

    def read_token(self, response: httpx.Response) -> AccessToken:
        """The token of a 200, ``ApprovalPending`` for CIBA's answer, else the typed error."""
        body = self.json_or_raise(response)
        if not isinstance(body, dict):
            raise AuthorityClientError("invalid_response", "not an object", response.status_code)
        if "auth_req_id" in body and "access_token" not in body:
            raise ApprovalPending(
                str(body["auth_req_id"]), int(body["expires_in"]), int(body.get("interval", 5))
            )
        return AccessToken(
            value=body["access_token"],
            token_type=body["token_type"],
            expires_at=self.clock() + float(body["expires_in"]),
            authorization_details=body.get("authorization_details", []),
        )
