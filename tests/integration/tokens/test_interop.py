"""Tokens and metadata as third-party libraries see them: authlib, PyJWT, and the SDK.

RFC 9068 §2.1 (RS256 is the algorithm every validator supports), RFC 8725 §3.1 (the
algorithm comes from the key, never from the token alone), RFC 8414 and OpenID Discovery
(every advertised value is one the code accepts), and the README's advice on leeway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jwt as pyjwt
import orjson
import pytest
from joserfc import jws
from joserfc.jwk import KeySet, RSAKey

from authority.clock import FrozenClock
from authority.context import Services
from authority.endpoints import paths
from authority.metadata import AGENT_AUTH_METHODS, GRANT_TYPES, build_metadata
from authority.sdk.middleware import AuthorityMiddleware
from authority.sdk.verifier import JWKSCache, TokenInvalid, TokenVerifier
from authority.settings import Settings
from authority.tokens.jose import DPOP_ALGORITHMS, TOKEN_SIGNING_ALGORITHMS, registry
from authority.tokens.keys import RSA_MIN_BITS
from tests.integration.sdk.test_middleware import tool_server
from tests.integration.tokens.test_keyring import instance, promote
from tests.support import ISSUER, RS_AUDIENCE, World

README = Path(__file__).resolve().parents[3] / "README.md"


async def issued_token(world: World) -> str:
    """An access token from a real exchange, under the default settings."""
    response = await world.exchange()
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def jwks_of(world: World) -> dict[str, Any]:
    response = await world.client.get(paths.JWKS)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def authlib_validator(jwks: dict[str, Any]) -> Any:
    from authlib.oauth2.rfc9068 import JWTBearerTokenValidator  # type: ignore[import-untyped]

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return KeySet.import_key_set(jwks)  # type: ignore[arg-type]

    return Validator(issuer=ISSUER, resource_server=RS_AUDIENCE)


def call_claims(now: int) -> dict[str, Any]:
    """What the SDK verifier needs of an access token, signed directly by a keyring."""
    return {
        "iss": ISSUER,
        "aud": RS_AUDIENCE,
        "sub": "own_1",
        "client_id": "agt_1",
        "act": {"sub": "agt_1"},
        "delegation_id": "dlg_1",
        "iat": now,
        "exp": now + 600,
        "authorization_details": [
            {"type": "tool_call", "tool": "t", "resource": "r", "action": "a"}
        ],
    }


def serving(svc: Services) -> httpx.AsyncClient:
    """An HTTP client on which the keyring's metadata and JWKS are published."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == paths.OAUTH_AUTHORIZATION_SERVER:
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": ISSUER + paths.JWKS})
        return httpx.Response(200, json=svc.keyring.jwks())

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def sdk_verifier(world: World) -> TokenVerifier:
    return TokenVerifier(
        ISSUER, RS_AUDIENCE, JWKSCache(ISSUER, world.client), clock=world.clock.now
    )


async def sdk_verify(world: World, token: str) -> str:
    verified = await sdk_verifier(world).verify(
        token, scheme="bearer", method="POST", url=RS_AUDIENCE + "/x", dpop_proof=None
    )
    return verified.jti


# --- RS256 by default (RFC 9068 §2.1) ------------------------------------------------------
def test_the_default_signing_algorithm_is_rs256(settings: Settings) -> None:
    assert settings.signing_alg == "RS256"
    assert settings.signing_rsa_bits >= RSA_MIN_BITS == 2048
    assert TOKEN_SIGNING_ALGORITHMS[0] == "RS256"


async def test_the_default_keys_are_rsa_of_at_least_2048_bits(services: Services) -> None:
    published = services.keyring.jwks()["keys"]
    assert len(published) == 2  # token and ledger
    for member in published:
        assert (member["kty"], member["alg"], member["use"]) == ("RSA", "RS256", "sig")
        modulus = base64.urlsafe_b64decode(member["n"] + "==")
        assert len(modulus) * 8 >= RSA_MIN_BITS
        assert not {"d", "p", "q", "dp", "dq", "qi"} & member.keys()


async def test_authlib_validates_a_token_issued_with_the_default_settings(world: World) -> None:
    token = await issued_token(world)
    validator = authlib_validator(await jwks_of(world))
    claims = validator.authenticate_token(token)
    validator.validate_token(claims, scopes=None, request=None)
    assert claims["client_id"] == world.agent_id
    assert claims.header["alg"] == "RS256"


async def test_authlib_refuses_an_eddsa_token_which_is_why_it_is_not_the_default(
    settings_factory: Any, clock: FrozenClock
) -> None:
    from authlib.oauth2.rfc6750.errors import InvalidTokenError  # type: ignore[import-untyped]

    async with instance(settings_factory(signing_alg="EdDSA"), clock) as svc:
        now = int(clock.now())
        claims = {"iss": ISSUER, "aud": RS_AUDIENCE, "sub": "own_1", "client_id": "agt_1"}
        token = svc.keyring.sign({**claims, "iat": now, "exp": now + 5, "jti": "j1"}, typ="at+jwt")
        with pytest.raises(InvalidTokenError):
            authlib_validator(svc.keyring.jwks()).authenticate_token(token)


async def test_pyjwt_verifies_a_default_token_through_the_jwks(world: World) -> None:
    token = await issued_token(world)
    client = pyjwt.PyJWKClient(ISSUER + paths.JWKS)
    jwks = await jwks_of(world)
    client.fetch_data = lambda: jwks  # type: ignore[method-assign]
    key = client.get_signing_key_from_jwt(token)
    assert key.algorithm_name == "RS256"
    claims = pyjwt.decode(token, key, algorithms=["RS256"], audience=RS_AUDIENCE, issuer=ISSUER)
    assert claims["act"] == {"sub": world.agent_id}


async def test_a_rotation_from_eddsa_to_rs256_keeps_every_token_verifying(
    settings_factory: Any, clock: FrozenClock
) -> None:
    eddsa = settings_factory(signing_alg="EdDSA")
    now = int(clock.now())
    claims = call_claims(now)
    async with instance(eddsa, clock) as old:
        before = old.keyring.sign({**claims, "jti": "before"}, typ="at+jwt")
    rs256 = eddsa.model_copy(update={"signing_alg": "RS256"})
    async with instance(rs256, clock) as svc:
        # The key made before the change keeps its algorithm and keeps signing...
        assert pyjwt.get_unverified_header(svc.keyring.sign(claims, typ="at+jwt"))["alg"] == "EdDSA"
        info = await svc.keyring.rotate("token", actor="test")
        assert info.alg == "RS256"
        await promote(svc, clock, rs256.key_activation_delay)
        after = svc.keyring.sign({**claims, "jti": "after"}, typ="at+jwt")
        jwks = svc.keyring.jwks("token")
        # The SDK verifier, fetching the keys as a resource server does.
        verifier = TokenVerifier(
            ISSUER, RS_AUDIENCE, JWKSCache(ISSUER, serving(svc)), clock=clock.now
        )
        for token, jti in ((before, "before"), (after, "after")):
            verified = await verifier.verify(
                token, scheme="bearer", method="POST", url=RS_AUDIENCE + "/x", dpop_proof=None
            )
            assert verified.jti == jti
    assert [pyjwt.get_unverified_header(t)["alg"] for t in (before, after)] == ["EdDSA", "RS256"]
    assert {k["alg"] for k in jwks["keys"]} == {"EdDSA", "RS256"}
    keys = {k.key_id: k for k in pyjwt.PyJWKSet.from_dict(jwks).keys}
    for token in (before, after):
        key = keys[pyjwt.get_unverified_header(token)["kid"]]
        decoded = pyjwt.decode(token, key, algorithms=[key.algorithm_name], audience=RS_AUDIENCE)
        assert decoded["sub"] == "own_1"


async def test_the_sdk_verifier_accepts_a_default_rs256_token(world: World) -> None:
    token = await issued_token(world)
    assert pyjwt.get_unverified_header(token)["alg"] == "RS256"
    unverified = pyjwt.decode(token, options={"verify_signature": False})
    assert await sdk_verify(world, token) == unverified["jti"]


# --- algorithm confusion (RFC 8725 §3.1) ------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(token: str, alg: str, key: Any, *, header: dict[str, Any] | None = None) -> str:
    """The same claims and kid under another algorithm, signed with ``key``."""
    original = pyjwt.get_unverified_header(token)
    payload = pyjwt.decode(token, options={"verify_signature": False})
    fields = {**original, "alg": alg, **(header or {})}
    return jws.serialize_compact(fields, orjson.dumps(payload), key, registry=registry([alg]))


async def test_the_sdk_refuses_a_token_under_another_algorithm_than_its_keys(
    world: World,
) -> None:
    token = await issued_token(world)
    signer = world.services.keyring._signers["token"]
    assert isinstance(signer.key, RSAKey)
    # The authority's own RSA key, but PS256 instead of the RS256 it is published for.
    private = {k: v for k, v in signer.key.as_dict(private=True).items() if k != "alg"}
    ps256 = _forge(token, "PS256", RSAKey.import_key(private))
    assert pyjwt.get_unverified_header(ps256)["alg"] == "PS256"
    with pytest.raises(TokenInvalid, match="jwt_alg_not_allowed"):
        await sdk_verify(world, ps256)


async def test_the_sdk_refuses_hs256_keyed_with_the_public_key_and_none(world: World) -> None:
    token = await issued_token(world)
    original = pyjwt.get_unverified_header(token)
    body = token.split(".")[1]
    (public,) = [k for k in (await jwks_of(world))["keys"] if k["kid"] == original["kid"]]
    forged = []
    # HS256 keyed with what a careless verifier would use as the secret: the public key.
    for secret in (public["n"].encode(), orjson.dumps(public)):
        header = _b64(orjson.dumps({**original, "alg": "HS256"}))
        mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        forged.append(f"{header}.{body}.{_b64(mac)}")
    forged.append(_b64(orjson.dumps({**original, "alg": "none"})) + f".{body}.")
    for value in forged:
        with pytest.raises(TokenInvalid):
            await sdk_verify(world, value)
    assert await sdk_verify(world, token)  # the genuine token verifies


# --- every advertised value is accepted, and nothing else -------------------------------------
async def test_each_advertised_token_endpoint_auth_method_works(world: World) -> None:
    assert set(AGENT_AUTH_METHODS) == {"private_key_jwt", "none"}
    # none: the attestation as actor_token, no client authentication (RFC 8693 §2.1).
    bare = await world.exchange(via="actor_token", client_id=world.agent_id)
    assert bare.status_code == 200, bare.text
    # private_key_jwt: the attestation as client_assertion (RFC 7523 §2.2).
    signed = await world.exchange(via="client_assertion", client_id=world.agent_id)
    assert signed.status_code == 200, signed.text


async def test_client_secret_methods_are_refused_at_the_token_endpoint(world: World) -> None:
    assert not {"client_secret_basic", "client_secret_post"} & set(AGENT_AUTH_METHODS)
    basic = base64.b64encode(f"{world.agent_id}:secret".encode()).decode()
    as_basic = await world.exchange(headers={"Authorization": f"Basic {basic}"})
    as_post = await world.exchange(client_id=world.agent_id, client_secret="secret")
    # RFC 6749 §5.2: 401 with a challenge only for the Authorization header; 400 else.
    assert (as_basic.status_code, as_post.status_code) == (401, 400)
    assert as_basic.headers["www-authenticate"].startswith("Basic ")
    for response in (as_basic, as_post):
        assert response.json()["error"] == "invalid_client"


async def test_each_advertised_grant_type_is_dispatched_and_no_other(world: World) -> None:
    doc = build_metadata(world.services.settings)
    assert doc["grant_types_supported"] == list(GRANT_TYPES)
    for grant_type in GRANT_TYPES:
        response = await world.client.post(paths.TOKEN, data={"grant_type": grant_type})
        assert response.json()["error"] != "unsupported_grant_type"
    for other in ("client_credentials", "authorization_code", "refresh_token"):
        response = await world.client.post(paths.TOKEN, data={"grant_type": other})
        assert response.json()["error"] == "unsupported_grant_type"


async def test_the_dpop_algorithms_are_one_list_everywhere(world: World) -> None:
    doc = build_metadata(world.services.settings)
    assert doc["dpop_signing_alg_values_supported"] == list(DPOP_ALGORITHMS)
    app: AuthorityMiddleware = tool_server(world)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=RS_AUDIENCE) as c:
        token = await issued_token(world)
        response = await c.post(
            "/repos/acme/web/issues", headers={"Authorization": f"DPoP {token}"}
        )
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    match = re.search(r'algs="([^"]*)"', challenge)
    assert match is not None
    assert match.group(1).split() == doc["dpop_signing_alg_values_supported"]


async def test_the_token_signing_algorithms_are_one_list_everywhere(world: World) -> None:
    openid = (await world.client.get(paths.OPENID_CONFIGURATION)).json()
    assert openid["id_token_signing_alg_values_supported"] == list(TOKEN_SIGNING_ALGORITHMS)
    field = Settings.model_fields["signing_alg"]
    assert set(field.annotation.__args__) == set(TOKEN_SIGNING_ALGORITHMS)  # type: ignore[union-attr]


# --- the README's advice for authlib and PyJWT resource servers -----------------------------
def readme_snippet(first_line: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if b.startswith(first_line + "\n")]
    return str(block)


def short_token(services: Services, *, iat: int, exp: int) -> str:
    claims = {
        "iss": ISSUER,
        "aud": RS_AUDIENCE,
        "sub": "own_1",
        "client_id": "agt_1",
        "jti": f"j{iat}{exp}",
        "iat": iat,
        "exp": exp,
    }
    return services.keyring.sign(claims, typ="at+jwt")


def tokens(services: Services) -> tuple[str, str]:
    """A fresh 5 s token from an authority whose clock runs 3 s ahead, and a dead one.

    These use the wall clock, because authlib and PyJWT read it themselves; the margins
    (seconds) are far wider than the few milliseconds between signing and checking.
    """
    now = int(time.time())
    fresh = short_token(services, iat=now + 3, exp=now + 8)
    expired = short_token(services, iat=now - 20, exp=now - 15)
    return fresh, expired


async def test_the_readme_authlib_settings_accept_fresh_and_refuse_expired(
    services: Services,
) -> None:
    from authlib.oauth2.rfc6750.errors import InvalidTokenError

    namespace: dict[str, Any] = {
        "ISSUER": ISSUER,
        "AUDIENCE": RS_AUDIENCE,
        "jwks_cache": SimpleNamespace(get=lambda: services.keyring.jwks("token")),
    }
    exec(readme_snippet("# resource server with authlib"), namespace)  # noqa: S102
    validator = namespace["validator"]
    fresh, expired = tokens(services)
    validator.validate_token(validator.authenticate_token(fresh), scopes=None, request=None)
    with pytest.raises(InvalidTokenError):
        validator.validate_token(validator.authenticate_token(expired), scopes=None, request=None)
    # Without the README's leeway, authlib refuses the fresh token ("issued in the future").
    plain = authlib_validator(services.keyring.jwks("token"))
    with pytest.raises(InvalidTokenError):
        plain.validate_token(plain.authenticate_token(fresh), scopes=None, request=None)


async def test_the_readme_pyjwt_settings_accept_fresh_and_refuse_expired(
    services: Services,
) -> None:
    namespace: dict[str, Any] = {
        "ISSUER": ISSUER,
        "AUDIENCE": RS_AUDIENCE,
        "JWKS_URI": ISSUER + paths.JWKS,
    }
    exec(readme_snippet("# resource server with PyJWT"), namespace)  # noqa: S102
    jwks = services.keyring.jwks("token")
    namespace["jwks_client"].fetch_data = lambda: jwks
    verify = namespace["verify"]
    fresh, expired = tokens(services)
    assert verify(fresh)["sub"] == "own_1"
    with pytest.raises(pyjwt.ExpiredSignatureError):
        verify(expired)
    # PyJWT's default leeway (0) refuses the fresh token.
    key = namespace["jwks_client"].get_signing_key_from_jwt(fresh)
    with pytest.raises(pyjwt.ImmatureSignatureError):
        pyjwt.decode(fresh, key, algorithms=["RS256"], audience=RS_AUDIENCE, issuer=ISSUER)
