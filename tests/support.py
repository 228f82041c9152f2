"""Test helpers that act as the authority's users would: over HTTP, with other libraries.

Agents sign attestations and DPoP proofs with PyJWT (not the authority's JOSE stack),
and access tokens are verified with PyJWT against the JWKS found through discovery.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from authority.clock import FrozenClock
from authority.context import Services
from authority.management.api_keys import bootstrap

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ISSUER = "http://127.0.0.1:8400"
TOKEN_URL = ISSUER + "/oauth2/token"
RS_AUDIENCE = "https://tools.example.test"


@dataclass
class AgentKey:
    """An agent's own key pair, held only by the agent."""

    kid: str = field(default_factory=lambda: f"k-{uuid.uuid4().hex[:8]}")
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers=headers)

    def attestation(
        self, agent_id: str, now: float, *, lifetime: int = 30, **overrides: Any
    ) -> str:
        claims: dict[str, Any] = {
            "iss": agent_id,
            "sub": agent_id,
            "aud": ISSUER,
            "iat": int(now),
            "exp": int(now) + lifetime,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return self.sign(claims, {"kid": self.kid, "typ": "JWT"})

    def dpop_proof(
        self, now: float, *, method: str = "POST", url: str = TOKEN_URL, **extra: Any
    ) -> str:
        claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(now), **extra}
        header = {"typ": "dpop+jwt", "jwk": {k: v for k, v in self.public_jwk().items()}}
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers=header)


def tool_call(tool: str, resource: str, action: str) -> str:
    return json.dumps([{"type": "tool_call", "tool": tool, "resource": resource, "action": action}])


@dataclass
class World:
    """One owner, one agent, one resource server, tools and a delegation, made via the API."""

    client: httpx.AsyncClient
    services: Services
    clock: FrozenClock
    admin: str = ""
    owner_id: str = ""
    owner_key: str = ""
    agent_id: str = ""
    agent_key: AgentKey = field(default_factory=AgentKey)
    server_id: str = ""
    server_secret: str = ""
    delegation_id: str = ""
    credential: str = ""

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def post(self, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(path, json=body, headers=self.auth(key))
        assert response.status_code in (200, 201), (path, response.status_code, response.text)
        result: dict[str, Any] = response.json()
        return result

    async def setup(self) -> World:
        self.admin = (await bootstrap(self.services)).secret
        owner = await self.post("/v1/owners", self.admin, {"name": f"owner-{uuid.uuid4().hex[:6]}"})
        self.owner_id = owner["id"]
        issued = await self.post(f"/v1/owners/{self.owner_id}/api-keys", self.admin, {})
        self.owner_key = issued["api_key"]
        server = await self.post(
            "/v1/resource-servers", self.admin, {"name": "tools", "audience": RS_AUDIENCE}
        )
        self.server_id, self.server_secret = server["id"], server["client_secret"]
        await self.add_tool("github.issues.create", actions=["create", "read"], read=["read"])
        agent = await self.post(
            "/v1/agents",
            self.owner_key,
            {"name": "triager", "autonomy_level": 2, "jwks": self.agent_key.jwks()},
        )
        self.agent_id = agent["id"]
        await self.delegate()
        return self

    async def add_tool(
        self,
        name: str,
        *,
        actions: list[str],
        read: list[str] | None = None,
        risk: int = 1,
        **extra: Any,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "resource_server_id": self.server_id,
            "actions": actions,
            "read_actions": read or [],
            "risk_tier": risk,
            **extra,
        }
        return await self.post("/v1/tools", self.admin, body)

    async def delegate(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "agent_id": self.agent_id,
            "intent": "triage bugs in acme/web",
            "scope": [
                {"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]}
            ],
            "expires_in": 3600,
            **overrides,
        }
        created = await self.post("/v1/delegations", self.owner_key, body)
        self.delegation_id, self.credential = created["id"], created["credential"]
        return created

    def exchange_form(
        self,
        *,
        tool: str = "github.issues.create",
        resource: str = "acme/web",
        action: str = "create",
        audience: str = RS_AUDIENCE,
        attestation: str | None = None,
        via: str = "actor_token",
        **extra: str,
    ) -> dict[str, str]:
        attestation = attestation or self.agent_key.attestation(self.agent_id, self.clock.now())
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": self.credential,
            "subject_token_type": JWT_TYPE,
            "resource": audience,
            "authorization_details": tool_call(tool, resource, action),
        }
        if via == "actor_token":
            form.update(actor_token=attestation, actor_token_type=JWT_TYPE)
        else:
            form.update(client_assertion=attestation, client_assertion_type=JWT_BEARER)
        form.update(extra)
        return form

    async def exchange(
        self, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return await self.client.post(
            "/oauth2/token", data=self.exchange_form(**kwargs), headers=headers or {}
        )
