"""Workload-token issuers for tests, served over loopback HTTP, as the platforms run them.

Each ``TestIssuer`` is one platform's token issuer: its own keys, its own discovery
document and JWKS (at the paths the real platform uses), served by its own uvicorn on
a loopback port, and a minting method that writes the platform's exact token shape,
signed with PyJWT (never the authority's own JOSE code):

- ``spiffe_svid``: a SPIFFE JWT-SVID (sub = SPIFFE ID, aud, exp, iat; ES256 and a kid,
  as SPIRE signs them; no iss unless the issuer was made with ``jwt_issuer=True``); the
  bundle at ``/bundle`` has an ``x509-svid`` key besides the ``jwt-svid`` ones;
- ``kubernetes_token``: a projected service-account token (``kubernetes.io`` with
  namespace, serviceaccount, pod and node; RS256), discovery and ``/openid/v1/jwks``;
- ``github_token``: a GitHub Actions OIDC token (every claim GitHub writes);
- ``gitlab_token``: a GitLab CI ``id_tokens`` token (ints, lists and booleans included);
- ``oidc_token``: any OIDC issuer's (Entra, Okta): ``sub`` and what is passed.

Use::

    from tests.federation_issuers import TestIssuer, serving_issuers, NOW

    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()                  # a TrustDomain using discovery
        token = github.github_token(repository="octo-org/app", now=NOW)
        identity = await verifier.verify(domain, token, NOW)

An issuer that is never served (for ``static_jwks`` and a static ``spiffe_bundle``) is
named ``https://<name>.issuer.test``. ``domain(key_source=...)`` makes the domain of any
key source (``static_jwks`` and ``spiffe_bundle`` use the issuer's current keys).
``rotate()`` adds a new signing key (``retire=True`` drops the old ones); ``mode`` makes
the issuer answer ``"up"``, ``"error"`` (500), ``"garbage"`` (200, not JSON),
``"huge"`` (a 300 KiB document), ``"gzip"`` (the documents gzip-compressed, whatever was
asked), ``"redirect"`` (302 to itself) or ``"hang"`` (never
answers until the issuer stops); ``await stop()`` stops its server
(connections refused) and ``await start()`` serves again on the same port; ``requests``
counts what was asked, by path, ``encodings`` the Accept-Encoding each request sent, and
``asked`` is set by the first request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import hmac
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from authority.federation.model import KeySource, Preset, TrustDomain
from tests.revocation_support import listening, serving

#: The time tokens are minted at unless told: pass it as ``now`` to ``verify`` too.
NOW = 1_800_000_000
AUDIENCE = "https://authority.example.test"

_JWKS_PATHS = {
    Preset.KUBERNETES: "/openid/v1/jwks",
    Preset.GITHUB: "/.well-known/jwks",
    Preset.GITLAB: "/oauth/discovery/keys",
    Preset.OIDC: "/discovery/v2.0/keys",
    Preset.SPIFFE: "/keys",
}
_DEFAULT_ALG = {Preset.SPIFFE: "ES256"}


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def new_key(alg: str = "RS256") -> SigningKey:
    kid = uuid.uuid4().hex[:16]
    if alg.startswith(("RS", "PS")):
        return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}[alg]
    return SigningKey(kid, alg, ec.generate_private_key(curve))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims: Mapping[str, Any], secret: bytes, kid: str) -> str:
    """An HMAC-signed token (alg confusion: the secret is a published key's bytes)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(dict(claims)).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def unsigned(claims: Mapping[str, Any], kid: str | None = None) -> str:
    """An ``alg: none`` token."""
    head: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid is not None:
        head["kid"] = kid
    return f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(dict(claims)).encode())}."


@dataclass
class TestIssuer:
    """One platform's workload-token issuer (see the module docstring)."""

    __test__ = False  # not a pytest test class

    name: str
    preset: Preset
    jwt_issuer: bool = False  # SPIFFE only: tokens carry iss (SPIRE's jwt_issuer)
    keys: list[SigningKey] = field(default_factory=list)
    mode: str = "up"
    cache_control: str | None = None
    refresh_hint: int = 300  # a SPIFFE bundle's spiffe_refresh_hint
    jwks_uri: str | None = None  # what the discovery document names (default: its own)
    requests: Counter[str] = field(default_factory=Counter)
    encodings: list[str] = field(default_factory=list)
    asked: asyncio.Event = field(default_factory=asyncio.Event)  # set by any request
    base: str = ""
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _stack: contextlib.AsyncExitStack | None = None
    _port: int = 0

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys.append(new_key(_DEFAULT_ALG.get(self.preset, "RS256")))
        if self.preset is Preset.SPIFFE:
            # An X.509 authority of the bundle: never to verify JWT-SVIDs with.
            self.x509_key = new_key("ES256")

    # --- what it publishes --------------------------------------------------------------
    @property
    def url(self) -> str:
        # Unserved (static keys only), an issuer is named as a real one would be.
        return f"{self.base}/{self.name}" if self.base else f"https://{self.name}.issuer.test"

    @property
    def issuer(self) -> str:
        if self.preset is Preset.SPIFFE and not self.jwt_issuer:
            return f"spiffe://{self.trust_domain}"
        return self.url

    @property
    def trust_domain(self) -> str:
        return f"{self.name}.test"

    @property
    def signing(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    def bundle(self) -> dict[str, Any]:
        """A SPIFFE trust bundle (SPIFFE Trust Domain and Bundle §4)."""
        x509 = {**self.x509_key.public_jwk(), "use": "x509-svid"}
        del x509["kid"], x509["alg"]
        x509["x5c"] = [_b64(b"certificate of " + self.trust_domain.encode())]
        jwt_keys = [{**k.public_jwk(), "use": "jwt-svid"} for k in self.keys]
        for key in jwt_keys:
            del key["alg"]  # SPIRE's bundles carry no alg
        return {
            "keys": [x509, *jwt_keys],
            "spiffe_sequence": 1,
            "spiffe_refresh_hint": self.refresh_hint,
        }

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri or self.url + _JWKS_PATHS[self.preset],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
        }

    def domain(
        self,
        *,
        key_source: KeySource = KeySource.DISCOVERY,
        audience: str = AUDIENCE,
        id: str | None = None,
        claim_mapping: Mapping[str, str] | None = None,
        version: int = 1,
    ) -> TrustDomain:
        location: str | None = None
        static: Mapping[str, object] | None = None
        if key_source is KeySource.DISCOVERY:
            location = self.url + "/.well-known/openid-configuration"
        elif key_source is KeySource.JWKS_URI:
            location = self.url + _JWKS_PATHS[self.preset]
        elif key_source is KeySource.STATIC_JWKS:
            static = self.jwks()
        elif self.base:
            location = self.url + "/bundle"
        else:
            static = self.bundle()
        return TrustDomain(
            id=id or f"td-{self.name}",
            name=self.name,
            preset=self.preset,
            issuer=self.issuer,
            audience=audience,
            key_source=key_source,
            key_location=location,
            static_jwks=static,
            claim_mapping=dict(claim_mapping or {}),
            version=version,
        )

    def rotate(self, alg: str | None = None, *, retire: bool = False) -> SigningKey:
        """A new signing key, published next to the old ones (or alone, ``retire``)."""
        key = new_key(alg or self.signing.alg)
        self.keys = [key] if retire else [*self.keys, key]
        return key

    # --- minting ------------------------------------------------------------------------
    def mint(
        self,
        claims: Mapping[str, Any],
        *,
        key: SigningKey | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """``claims`` signed by ``key`` (default the newest) with its kid and alg."""
        key = key or self.signing
        header = {"typ": "JWT", "kid": key.kid, **(headers or {})}
        header = {k: v for k, v in header.items() if v is not None}
        body = {k: v for k, v in claims.items() if v is not None}
        # PyJWS, not PyJWT: it signs any claims, as a test of a malformed one needs.
        payload = json.dumps(body).encode()
        return jwt.api_jws.encode(payload, key.private, algorithm=key.alg, headers=header)

    def _times(self, now: int, lifetime: int) -> dict[str, Any]:
        return {"iat": now, "nbf": now, "exp": now + lifetime}

    def spiffe_svid(
        self,
        path: str = "/ns/prod/sa/agent",
        *,
        now: int = NOW,
        aud: Any = AUDIENCE,
        lifetime: int = 300,
        **extra: Any,
    ) -> str:
        claims: dict[str, Any] = {
            "sub": f"spiffe://{self.trust_domain}{path}",
            "aud": [aud] if isinstance(aud, str) else aud,
            "exp": now + lifetime,
            "iat": now,
        }
        if self.jwt_issuer:
            claims["iss"] = self.issuer
        return self.mint({**claims, **extra})

    def kubernetes_token(
        self,
        namespace: str = "agents",
        service_account: str = "planner",
        *,
        pod: str | None = "planner-7d9f8b6c4-x2x9q",
        now: int = NOW,
        aud: Any = AUDIENCE,
        lifetime: int = 3600,
        **extra: Any,
    ) -> str:
        info: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": str(uuid.uuid4())},
        }
        if pod is not None:
            info["node"] = {"name": "node-1", "uid": str(uuid.uuid4())}
            info["pod"] = {"name": pod, "uid": str(uuid.uuid4())}
        info["warnafter"] = now + 3607
        claims = {
            "aud": [aud] if isinstance(aud, str) else aud,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": info,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            **self._times(now, lifetime),
        }
        return self.mint({**claims, **extra})

    def github_token(
        self,
        repository: str = "octo-org/octo-repo",
        *,
        ref: str = "refs/heads/main",
        environment: str | None = "prod",
        event_name: str = "push",
        now: int = NOW,
        aud: Any = AUDIENCE,
        lifetime: int = 300,
        **extra: Any,
    ) -> str:
        owner = repository.split("/")[0]
        ref_type = "tag" if ref.startswith("refs/tags/") else "branch"
        subject = f"repo:{repository}:" + (
            f"environment:{environment}" if environment else f"ref:{ref}"
        )
        workflow = f"{repository}/.github/workflows/deploy.yml@{ref}"
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "sub": subject,
            "environment": environment,
            "aud": aud,
            "ref": ref,
            "sha": "d3b07384d113edec49eaa6238ad5ff00d3b07384",
            "repository": repository,
            "repository_owner": owner,
            "actor_id": "12",
            "repository_visibility": "private",
            "repository_id": "74",
            "repository_owner_id": "65",
            "run_id": "6143523476",
            "run_number": "10",
            "run_attempt": "1",
            "runner_environment": "github-hosted",
            "actor": "octocat",
            "workflow": "deploy",
            "head_ref": "",
            "base_ref": "",
            "event_name": event_name,
            "ref_protected": "true",
            "ref_type": ref_type,
            "workflow_ref": workflow,
            "workflow_sha": "d3b07384d113edec49eaa6238ad5ff00d3b07384",
            "job_workflow_ref": workflow,
            "job_workflow_sha": "d3b07384d113edec49eaa6238ad5ff00d3b07384",
            "iss": self.issuer,
            **self._times(now, lifetime),
        }
        headers = {"x5t": _b64(hashlib.sha256(self.signing.kid.encode()).digest()[:20])}
        return self.mint({**claims, **extra}, headers=headers)

    def gitlab_token(
        self,
        project_path: str = "my-group/my-project",
        *,
        ref: str = "main",
        ref_type: str = "branch",
        environment: str | None = "production",
        protected: bool = True,
        now: int = NOW,
        aud: Any = AUDIENCE,
        lifetime: int = 3600,
        **extra: Any,
    ) -> str:
        namespace = project_path.rpartition("/")[0]
        prefix = "refs/tags/" if ref_type == "tag" else "refs/heads/"
        claims: dict[str, Any] = {
            "namespace_id": "72",
            "namespace_path": namespace,
            "project_id": "20",
            "project_path": project_path,
            "user_id": "1",
            "user_login": "sample-user",
            "user_email": "sample-user@example.com",
            "user_identities": [{"provider": "github", "extern_uid": "2435223452345"}],
            "pipeline_id": "574",
            "pipeline_source": "push",
            "job_id": "302",
            "ref": ref,
            "ref_type": ref_type,
            "ref_path": prefix + ref,
            "ref_protected": "true" if protected else "false",
            "groups_direct": ["my-group"],
            "environment": environment,
            "environment_protected": "true" if environment else None,
            "deployment_tier": "production" if environment else None,
            "environment_action": "start" if environment else None,
            "runner_id": 1,
            "runner_environment": "self-hosted",
            "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
            "project_visibility": "private",
            "ci_config_ref_uri": f"gitlab.example.com/{project_path}//.gitlab-ci.yml@{prefix}{ref}",
            "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
            "jti": str(uuid.uuid4()),
            "iss": self.issuer,
            "sub": f"project_path:{project_path}:ref_type:{ref_type}:ref:{ref}",
            "aud": aud,
            **self._times(now, lifetime),
        }
        return self.mint({**claims, **extra})

    def oidc_token(
        self,
        sub: str = "00000000-0000-0000-0000-00000000abcd",
        *,
        now: int = NOW,
        aud: Any = AUDIENCE,
        lifetime: int = 3600,
        **extra: Any,
    ) -> str:
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "aud": aud,
            "jti": str(uuid.uuid4()),
            **self._times(now, lifetime),
        }
        return self.mint({**claims, **extra})

    # --- serving ------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        prefix = f"/{self.name}"
        route = path[len(prefix) :] if path.startswith(prefix + "/") else None
        documents = {
            "/.well-known/openid-configuration": self.discovery,
            _JWKS_PATHS[self.preset]: self.jwks,
            "/bundle": self.bundle,
        }
        self.requests[route or path] += 1
        sent = dict(scope["headers"]).get(b"accept-encoding", b"")
        self.encodings.append(sent.decode("latin-1"))
        self.asked.set()
        if self.mode == "hang":
            await self._release.wait()
            await _reply(send, 503, b"stopping")
            return
        if self.mode == "error":
            await _reply(send, 500, b"internal error")
            return
        if self.mode == "redirect":
            await _reply(send, 302, b"", location=self.url + (route or "/"))
            return
        if self.mode == "huge":
            await _reply(send, 200, b'{"keys": [' + b" " * (300 * 1024) + b"]}")
            return
        if route not in documents:
            await _reply(send, 404, b"not found")
            return
        body = b"<html>not json" if self.mode == "garbage" else json.dumps(documents[route]())
        if self.mode == "gzip":
            packed = gzip.compress(body.encode() if isinstance(body, str) else body)
            await _reply(send, 200, packed, encoding="gzip")
            return
        await _reply(
            send, 200, body if isinstance(body, bytes) else body.encode(), self.cache_control
        )

    async def start(self) -> None:
        """Serve (again, on the same port once it had one)."""
        if self._stack is not None:
            return
        self._release.clear()
        stack = contextlib.AsyncExitStack()
        base = await stack.enter_async_context(serving(self, sock=listening(self._port)))
        self._port = int(base.rsplit(":", 1)[1])
        self.base, self._stack = base, stack

    async def stop(self) -> None:
        """Stop answering: connections to its port are refused."""
        self._release.set()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()


async def _reply(
    send: Any,
    status: int,
    body: bytes,
    cache_control: str | None = None,
    *,
    location: str | None = None,
    encoding: str | None = None,
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if cache_control is not None:
        headers.append((b"cache-control", cache_control.encode()))
    if location is not None:
        headers.append((b"location", location.encode()))
    if encoding is not None:
        headers.append((b"content-encoding", encoding.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving_issuers(*issuers: TestIssuer) -> AsyncIterator[tuple[TestIssuer, ...]]:
    """Serve every issuer on its own loopback port for the block."""
    try:
        for issuer in issuers:
            await issuer.start()
        yield issuers
    finally:
        for issuer in issuers:
            await issuer.stop()
