"""Client authentication as third-party clients do it (RFC 6749 §2.3, §5.2; RFC 7523 §2.2).

authlib's ``PrivateKeyJWT`` signs client assertions without a ``kid`` (RFC 7515 §4.1.4
makes it optional) and with ``exp`` an hour out; both must authenticate. Failures follow
RFC 6749 §5.2: 401 with a ``Basic`` challenge only after the Authorization header, 400
``invalid_client`` for credentials sent in the body, or none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from authlib.oauth2.auth import ClientAuth  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import PrivateKeyJWT  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import assertion as authlib_assertion
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select

from authority.grants.client_auth import KID_REQUIRED_DESCRIPTION
from authority.storage.schema import grants
from tests.revocation_support import (
    FEED,
    INTROSPECT,
    REVOKE,
    add_server,
    basic,
    client_assertion,
    introspect,
    is_active,
    issue,
)
from tests.support import ISSUER, JWT_BEARER, AgentKey, World

MAX_WITHOUT_KID = 5  # the default of assertion_max_keys_without_kid


def keyless(key: AgentKey, client_id: str, now: float, *, aud: str = ISSUER) -> str:
    """An RFC 7523 assertion whose header names no key (as authlib's)."""
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": int(now),
        "exp": int(now) + 30,
        "jti": uuid.uuid4().hex,
    }
    return key.sign(claims, {"typ": "JWT"})


def header_of(token: str) -> dict[str, Any]:
    header: dict[str, Any] = jwt.get_unverified_header(token)
    return header


async def last_grant(world: World) -> Any:
    async with world.services.engine.connect() as conn:
        return (await conn.execute(select(grants).order_by(grants.c.created_at.desc()))).first()


# --- authlib's PrivateKeyJWT -------------------------------------------------------------------
async def _register_rsa_server(world: World) -> tuple[str, str, RSAKey]:
    """A resource server registered for private_key_jwt with an RSA key (authlib's RS256)."""
    private = RSAKey.generate_key(2048)
    public = {**private.as_dict(private=False), "kid": "rsa-1", "alg": "RS256", "use": "sig"}
    audience = "https://authlib.example.test"
    response = await world.client.post(
        "/v1/resource-servers",
        json={
            "name": "authlib",
            "audience": audience,
            "auth_method": "private_key_jwt",
            "jwks": {"keys": [public]},
        },
        headers=world.auth(world.admin),
    )
    assert response.status_code == 201, response.text
    server_id: str = response.json()["id"]
    await world.add_tool("authlib.tool", actions=["do"], resource_server_id=server_id)
    return server_id, audience, private


@pytest.fixture
def authlib_on_the_test_clock(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """authlib stamps iat with time.time(); the authority runs on the frozen test clock."""
    monkeypatch.setattr(authlib_assertion, "time", SimpleNamespace(time=world.clock.now))


class AuthlibClient:
    """A resource server authenticating with authlib's own client machinery: its
    ``ClientAuth`` running ``PrivateKeyJWT`` prepares each request (independent of which
    HTTP library authlib's integrations use), sent to the authority in process."""

    def __init__(self, world: World, client_id: str, key: RSAKey) -> None:
        self.http = world.client
        self.auth = ClientAuth(client_id, key, auth_method=PrivateKeyJWT())

    async def post(self, url: str, form: dict[str, str]) -> httpx.Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        url, headers, body = self.auth.prepare("POST", url, headers, urlencode(form))
        return await self.http.post(url, content=body, headers=headers)

    async def introspect(self, token: str) -> httpx.Response:
        return await self.post(ISSUER + INTROSPECT, {"token": token})

    async def revoke(self, token: str) -> httpx.Response:
        return await self.post(ISSUER + REVOKE, {"token": token})


async def _token_for(world: World, audience: str) -> str:
    await world.delegate(scope=[{"tool": "authlib.tool", "resources": ["*"], "actions": ["do"]}])
    return await issue(world, tool="authlib.tool", resource="x", action="do", audience=audience)


def test_authlib_private_key_jwt_sends_no_kid_and_a_long_exp() -> None:
    """What the tests below rely on: authlib's real assertion has neither a kid nor a
    short lifetime, so the authority's own kid and lifetime rules are what is tested."""
    key = RSAKey.generate_key(2048)
    auth = type("Auth", (), {"client_id": "rs_x", "client_secret": key})()
    assertion = PrivateKeyJWT().sign(auth, ISSUER + INTROSPECT)
    assert "kid" not in header_of(assertion)
    assert header_of(assertion)["alg"] == "RS256"
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] > 60


@pytest.mark.usefixtures("authlib_on_the_test_clock")
async def test_authlib_private_key_jwt_introspects(world: World) -> None:
    server_id, audience, key = await _register_rsa_server(world)
    token = await _token_for(world, audience)
    client = AuthlibClient(world, server_id, key)
    response = await client.introspect(token)
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True
    assert response.json()["aud"] == audience
    # Each call signs a fresh assertion (new jti): the second works too.
    again = await client.introspect(token)
    assert again.json()["active"] is True


@pytest.mark.usefixtures("authlib_on_the_test_clock")
async def test_authlib_private_key_jwt_revokes(world: World) -> None:
    server_id, audience, key = await _register_rsa_server(world)
    token = await _token_for(world, audience)
    client = AuthlibClient(world, server_id, key)
    response = await client.revoke(token)
    assert response.status_code == 200, response.text
    answer = await client.introspect(token)
    assert answer.json() == {"active": False}


@pytest.mark.usefixtures("authlib_on_the_test_clock")
async def test_authlib_with_another_key_is_refused(world: World) -> None:
    server_id, audience, key = await _register_rsa_server(world)
    token = await _token_for(world, audience)
    thief = AuthlibClient(world, server_id, RSAKey.generate_key(2048))
    response = await thief.introspect(token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    refused = await thief.revoke(token)
    assert refused.status_code == 400
    answer = await AuthlibClient(world, server_id, key).introspect(token)
    assert answer.json()["active"] is True


async def test_a_keyless_assertion_is_single_use(world: World) -> None:
    server = await add_server(world, "https://jwt.example.test", method="private_key_jwt")
    assert server.key is not None
    assertion = keyless(server.key, server.id, world.clock.now())
    form = {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    first = await world.client.post(INTROSPECT, data={"token": "x.y.z", **form})
    assert first.status_code == 200, first.text
    replayed = await world.client.post(INTROSPECT, data={"token": "x.y.z", **form})
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_client"


async def test_a_stale_assertion_with_a_far_exp_is_refused(world: World) -> None:
    """exp an hour out is accepted only within assertion_max_lifetime of iat."""
    server = await add_server(world, "https://jwt.example.test", method="private_key_jwt")
    assert server.key is not None
    now = int(world.clock.now())
    fresh = client_assertion(server.key, server.id, now, iat=now - 30, exp=now + 3600)
    assert (await world.client.post(INTROSPECT, data={"token": "t", **fresh})).status_code == 200
    stale = client_assertion(server.key, server.id, now, iat=now - 120, exp=now + 3600)
    response = await world.client.post(INTROSPECT, data={"token": "t", **stale})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


# --- agents' attestations without kid ------------------------------------------------------------
async def _give_agent_keys(world: World, extra: list[AgentKey]) -> None:
    """Register ``extra`` keys before the agent's own, and bind the delegation to its own."""
    jwks = {"keys": [k.public_jwk() for k in extra] + [world.agent_key.public_jwk()]}
    response = await world.client.patch(
        f"/v1/agents/{world.agent_id}", json={"jwks": jwks}, headers=world.auth(world.owner_key)
    )
    assert response.status_code == 200, response.text
    await world.delegate(key_id=world.agent_key.kid)


@pytest.mark.parametrize("via", ["actor_token", "client_assertion"])
async def test_attestation_without_kid_with_one_key(world: World, via: str) -> None:
    attestation = keyless(world.agent_key, world.agent_id, world.clock.now())
    response = await world.exchange(attestation=attestation, via=via)
    assert response.status_code == 200, response.text
    # The token is bound to the key that signed, as with a kid.
    replayed = await world.exchange(attestation=attestation, via=via)
    assert replayed.status_code == 400


async def test_attestation_without_kid_with_two_keys(world: World) -> None:
    await _give_agent_keys(world, [AgentKey()])
    attestation = keyless(world.agent_key, world.agent_id, world.clock.now())
    response = await world.exchange(attestation=attestation)
    assert response.status_code == 200, response.text
    # And as a client assertion at the revocation endpoint.
    token = response.json()["access_token"]
    form = {
        "client_assertion_type": JWT_BEARER,
        "client_assertion": keyless(world.agent_key, world.agent_id, world.clock.now()),
    }
    revoked = await world.client.post(REVOKE, data={"token": token, **form})
    assert revoked.status_code == 200, revoked.text
    assert await is_active(world, token) is False


async def test_attestation_without_kid_signed_by_the_other_key_is_not_the_delegations(
    world: World,
) -> None:
    """Found without kid, the signing key is still the one checked against the binding."""
    other = AgentKey()
    await _give_agent_keys(world, [other])
    response = await world.exchange(attestation=keyless(other, world.agent_id, world.clock.now()))
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "delegation_key_mismatch"


@pytest.mark.parametrize("via", ["actor_token", "client_assertion"])
async def test_attestation_without_kid_by_an_unregistered_key_is_refused(
    world: World, via: str
) -> None:
    await _give_agent_keys(world, [AgentKey()])
    thief = AgentKey()
    response = await world.exchange(
        attestation=keyless(thief, world.agent_id, world.clock.now()), via=via
    )
    assert response.status_code == 400
    assert response.json()["error"] == (
        "invalid_request" if via == "actor_token" else "invalid_client"
    )
    assert (await last_grant(world)).reason == "attestation_invalid"


def _hs256_with_public_key(key: AgentKey, agent_id: str, now: float) -> str:
    """alg confusion (RFC 8725 §2.1): an HMAC keyed with the public key, no kid."""
    public = key.private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )

    def b64(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {
        "iss": agent_id,
        "sub": agent_id,
        "aud": ISSUER,
        "iat": int(now),
        "exp": int(now) + 30,
        "jti": uuid.uuid4().hex,
    }
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


async def test_attestation_without_kid_never_uses_an_alg_its_keys_do_not_have(
    world: World,
) -> None:
    confused = _hs256_with_public_key(world.agent_key, world.agent_id, world.clock.now())
    response = await world.exchange(attestation=confused)
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "attestation_invalid"


async def test_attestation_without_kid_over_the_bound_is_refused(world: World) -> None:
    await _give_agent_keys(world, [AgentKey() for _ in range(MAX_WITHOUT_KID)])
    attestation = keyless(world.agent_key, world.agent_id, world.clock.now())
    response = await world.exchange(attestation=attestation, via="client_assertion")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_client"
    assert "kid" in body["error_description"]
    assert (await last_grant(world)).reason == "attestation_kid_required"
    # The same agent with a kid: fine.
    assert (await world.exchange()).status_code == 200


async def test_attestation_without_kid_at_the_bound_works(world: World) -> None:
    await _give_agent_keys(world, [AgentKey() for _ in range(MAX_WITHOUT_KID - 1)])
    attestation = keyless(world.agent_key, world.agent_id, world.clock.now())
    assert (await world.exchange(attestation=attestation)).status_code == 200


async def test_keys_of_another_type_do_not_count_towards_the_bound(world: World) -> None:
    """Only keys whose type fits the header's alg are candidates (RFC 8725 §3.1)."""
    others = [
        {**ECKey.generate_key("P-256").as_dict(private=False), "kid": f"ec-{i}", "alg": "ES256"}
        for i in range(MAX_WITHOUT_KID)
    ]
    jwks = {"keys": [*others, world.agent_key.public_jwk()]}
    response = await world.client.patch(
        f"/v1/agents/{world.agent_id}", json={"jwks": jwks}, headers=world.auth(world.owner_key)
    )
    assert response.status_code == 200, response.text
    await world.delegate(key_id=world.agent_key.kid)
    attestation = keyless(world.agent_key, world.agent_id, world.clock.now())
    assert (await world.exchange(attestation=attestation)).status_code == 200


async def test_client_assertion_without_kid_over_the_bound_is_refused(world: World) -> None:
    keys = [AgentKey() for _ in range(MAX_WITHOUT_KID + 1)]
    response = await world.client.post(
        "/v1/resource-servers",
        json={
            "name": "many-keys",
            "audience": "https://many.example.test",
            "auth_method": "private_key_jwt",
            "jwks": {"keys": [k.public_jwk() for k in keys]},
        },
        headers=world.auth(world.admin),
    )
    assert response.status_code == 201, response.text
    server_id = response.json()["id"]
    form = {
        "client_assertion_type": JWT_BEARER,
        "client_assertion": keyless(keys[-1], server_id, world.clock.now()),
    }
    refused = await world.client.post(INTROSPECT, data={"token": "t", **form})
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_client",
        "error_description": KID_REQUIRED_DESCRIPTION,
    }
    named = client_assertion(keys[-1], server_id, world.clock.now())
    assert (await world.client.post(INTROSPECT, data={"token": "t", **named})).status_code == 200


# --- RFC 6749 §5.2: 401 only after the Authorization header -----------------------------------
ENDPOINTS = [INTROSPECT, REVOKE, FEED]


async def _failed(world: World, path: str, method: str) -> httpx.Response:
    """One request with wrong credentials sent by ``method``."""
    headers: dict[str, str] = {}
    data: dict[str, str] = {"token": "x.y.z"} if path != FEED else {}
    if method == "client_secret_basic":
        headers = basic(world.server_id, "wrong")
    elif method == "client_secret_post":
        data.update(client_id=world.server_id, client_secret="wrong")
    elif method == "private_key_jwt":
        data.update(client_assertion(AgentKey(), world.server_id, world.clock.now()))
    elif method == "agent_assertion":
        data.update(client_assertion(AgentKey(), world.agent_id, world.clock.now()))
    if path == FEED and not data:
        return await world.client.get(path, headers=headers)
    return await world.client.post(path, data=data, headers=headers)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "method", ["client_secret_post", "private_key_jwt", "agent_assertion", "none"]
)
async def test_failed_body_authentication_is_400(world: World, path: str, method: str) -> None:
    response = await _failed(world, path, method)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_failed_basic_authentication_is_401_with_a_challenge(world: World, path: str) -> None:
    response = await _failed(world, path, "client_secret_basic")
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"] == 'Basic realm="authority"'


async def test_token_endpoint_authorization_header_is_401(world: World) -> None:
    response = await world.exchange(headers=basic(world.agent_id, "secret"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"] == 'Basic realm="authority"'


@pytest.mark.parametrize("via", ["client_assertion", "actor_token"])
async def test_token_endpoint_failed_attestation_is_400(world: World, via: str) -> None:
    response = await world.exchange(
        attestation=AgentKey().attestation(world.agent_id, world.clock.now()), via=via
    )
    assert response.status_code == 400
    expected = "invalid_client" if via == "client_assertion" else "invalid_request"
    assert response.json()["error"] == expected
    assert "www-authenticate" not in response.headers


async def test_token_endpoint_without_attestation_is_400(world: World) -> None:
    form = world.exchange_form()
    del form["actor_token"], form["actor_token_type"]
    response = await world.client.post("/oauth2/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers


async def test_introspection_by_the_server_still_works(world: World) -> None:
    """The baseline the refusals above are measured against."""
    token = await issue(world)
    assert (await introspect(world, token)).json()["active"] is True
