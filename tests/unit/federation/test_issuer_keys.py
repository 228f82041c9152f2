"""Reading an issuer's JWKS or SPIFFE bundle: only usable public verification keys."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from authority.federation.addresses import AddressRefused, PublicOnlyTransport, check_key_location
from authority.federation.errors import WorkloadRejected
from authority.federation.keys import (
    MAX_KEYS_WITHOUT_KID,
    _max_age,
    parse_jwks,
    select,
)


def _rsa(bits: int = 2048, **extra: Any) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return {**json.loads(RSAAlgorithm.to_jwk(key)), **extra}  # private members included


def _ec(curve: ec.EllipticCurve, **extra: Any) -> dict[str, Any]:
    key = ec.generate_private_key(curve).public_key()
    return {**json.loads(ECAlgorithm.to_jwk(key)), **extra}


def _ed(**extra: Any) -> dict[str, Any]:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return {**json.loads(OKPAlgorithm.to_jwk(key)), **extra}


def test_usable_keys_and_their_algorithms() -> None:
    keys = parse_jwks(
        {
            "keys": [
                _rsa(kid="r"),
                _ec(ec.SECP256R1(), kid="e256"),
                _ec(ec.SECP384R1(), kid="e384"),
                _ed(kid="ed"),
                _rsa(kid="r-ps", alg="PS256"),
            ]
        }
    )
    by_kid = {k.kid: k.algorithms for k in keys}
    assert by_kid["r"] == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    assert by_kid["e256"] == {"ES256"}
    assert by_kid["e384"] == {"ES384"}
    assert by_kid["ed"] == {"EdDSA"}
    assert by_kid["r-ps"] == {"PS256"}
    # A private key published by mistake is used as its public half only.
    assert not next(k for k in keys if k.kid == "r").key.is_private


def test_unusable_keys_are_skipped_not_fatal() -> None:
    keys = parse_jwks(
        {
            "keys": [
                _rsa(kid="enc", use="enc"),
                _rsa(1024, kid="small"),
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                _ec(ec.SECP521R1(), kid="p521"),
                _rsa(kid="hs", alg="HS256"),
                _rsa(kid=7),
                _rsa(kid="encrypts", key_ops=["encrypt", "wrapKey"]),
                _rsa(kid="odd-ops", key_ops="verify"),
                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                "not a key",
                _ec(ec.SECP256R1(), kid="ok", use="sig"),
                _ec(ec.SECP256R1(), kid="verifies", key_ops=["verify"]),
            ]
        }
    )
    assert [k.kid for k in keys] == ["ok", "verifies"]
    assert parse_jwks({"keys": "x"}) == ()
    assert parse_jwks(["keys"]) == ()


def test_a_spiffe_bundle_gives_its_jwt_svid_keys_only() -> None:
    bundle = {
        "keys": [
            _ec(ec.SECP256R1(), use="x509-svid", x5c=["MIIB"]),
            _ec(ec.SECP256R1(), kid="jwt", use="jwt-svid"),
            _ec(ec.SECP256R1(), kid="plain"),
        ],
        "spiffe_sequence": 3,
    }
    assert [k.kid for k in parse_jwks(bundle, spiffe=True)] == ["jwt"]
    # And a JWKS never takes a bundle's jwt-svid key as a signing key of its own.
    assert [k.kid for k in parse_jwks(bundle)] == ["plain"]


def test_keys_without_kid_are_tried_only_a_few() -> None:
    keys = parse_jwks({"keys": [_ec(ec.SECP256R1()) for _ in range(MAX_KEYS_WITHOUT_KID + 1)]})
    with pytest.raises(WorkloadRejected, match="workload_kid_required"):
        select(keys, None, "ES256")
    assert len(select(keys[:MAX_KEYS_WITHOUT_KID], None, "ES256")) == MAX_KEYS_WITHOUT_KID
    assert select(keys[:2], None, "RS256") == ()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("max-age=60", 60.0),
        ("public, max-age=120, must-revalidate", 120.0),
        ("no-cache", 0.0),
        ("private, no-store", 0.0),
        ("max-age=-1", None),
        ("max-age=abc", None),
        ("public", None),
    ],
)
def test_cache_control(header: str | None, seconds: float | None) -> None:
    assert _max_age(header) == seconds


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://token.actions.githubusercontent.com/.well-known/jwks", True),
        ("http://127.0.0.1:8080/jwks", True),
        ("http://localhost/jwks", True),
        ("http://issuer.example.com/jwks", False),
        ("https://user:pw@issuer.example.com/jwks", False),
        ("https://issuer.example.com/jwks#x", False),
        ("file:///etc/passwd", False),
        ("https:///jwks", False),
        # Unusable by the HTTP client: a port that is no number, a host IDNA refuses.
        ("https://example.com:abc/jwks", False),
        ("https://example.com:99999/jwks", False),
        ("https://xn--a.com/jwks", False),
        # Never the authority's own network: metadata services, private and reserved.
        ("https://169.254.169.254/latest/meta-data", False),
        ("https://[fd00:ec2::254]/jwks", False),
        ("https://metadata.google.internal/computeMetadata/v1", False),
        ("https://10.1.2.3/jwks", False),
        ("https://172.16.0.1/jwks", False),
        ("https://192.168.1.1/jwks", False),
        ("https://100.64.0.1/jwks", False),
        ("https://[fd12::1]/jwks", False),
        ("https://[fe80::1]/jwks", False),
        ("https://[::ffff:10.0.0.1]/jwks", False),
        ("https://0.0.0.0/jwks", False),
        ("https://2130706433/jwks", False),
        ("https://8.8.8.8/jwks", True),
        ("https://exa mple.com/jwks", False),
        ("https://a..b/jwks", False),
        ("https://b\u00fccher.example/jwks", True),
        ("https://METADATA.google.internal./x", False),
    ],
)
def test_key_locations(url: str, allowed: bool) -> None:
    if allowed:
        check_key_location(url)
    else:
        with pytest.raises(ValueError, match="key location"):
            check_key_location(url)


@pytest.mark.parametrize(
    "member",
    [
        {"kty": "EC", "crv": "P-192", "x": "AAAA", "y": "AAAA"},
        {"kty": "EC", "crv": "BP-256", "x": "AAAA", "y": "AAAA"},
        {"kty": "EC", "crv": "p-256", "x": "AAAA", "y": "AAAA"},
        {"kty": "OKP", "crv": "P-521", "x": "AAAA"},
    ],
)
def test_a_key_of_an_unknown_curve_is_skipped(member: dict[str, Any]) -> None:
    # The JOSE library answers such a curve with KeyError: still just a key skipped.
    keys = parse_jwks({"keys": [{**member, "kid": "odd"}, _ec(ec.SECP256R1(), kid="ok")]})
    assert [k.kid for k in keys] == ["ok"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/jwks",
        "https://127.0.0.1/jwks",
        "https://localhost/jwks",
        "http://[::1]/x",
    ],
)
def test_loopback_only_when_allowed(url: str) -> None:
    check_key_location(url, allow_loopback=True)
    with pytest.raises(ValueError, match="key location"):
        check_key_location(url, allow_loopback=False)


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "127.0.0.1", "fd00::1"])
async def test_a_host_resolving_to_a_refused_address_is_never_connected_to(
    address: str,
) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", address]

    transport = PublicOnlyTransport(allow_loopback=False, resolve=resolve)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(AddressRefused):
            await http.get("https://keys.example.com/jwks")


async def test_the_connection_is_made_to_the_address_checked() -> None:
    seen: list[httpx.Request] = []

    class Inner(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={})

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    transport = PublicOnlyTransport(allow_loopback=False, resolve=resolve)
    transport._inner = Inner()  # type: ignore[assignment]
    async with httpx.AsyncClient(transport=transport) as http:
        await http.get("https://keys.example.com/jwks")
    (request,) = seen
    assert request.url.host == "93.184.216.34"
    assert request.headers["host"] == "keys.example.com"
    assert request.extensions["sni_hostname"] == "keys.example.com"
