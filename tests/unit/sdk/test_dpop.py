"""DPoP proof checks (RFC 9449 §4.3) as properties, on proofs built here byte by byte.

Each property varies one part of an otherwise good proof: the proof is accepted exactly
when that part follows its rule, and refused with that rule's reason otherwise. The
thumbprint a token is bound to is recomputed here from RFC 7638 §3, and ``ath`` from
RFC 9449 §4.2, without the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from authority.protocol import PRIVATE_MEMBERS
from authority.sdk.dpop import MIN_RSA_BITS, VerifiedProof, verify_proof
from authority.sdk.jws import JWTRejected

NOW = 1_800_000_000
URL = "https://tools.example.test/issues"
KEY = ed25519.Ed25519PrivateKey.generate()
P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
RSA = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
#: (signer, the algorithms its key allows, those it signs with here). RSA keys are apart:
#: see test_a_proof_with_an_rsa_2048_jwk_verifies.
SIGNERS = [
    (KEY, {"EdDSA", "Ed25519"}, ["EdDSA"]),
    (P256, {"ES256"}, ["ES256"]),
    (P384, {"ES384"}, ["ES384"]),
]
RSA_SIGNER = (RSA, {"RS256", "PS256", "PS384"}, ["RS256", "PS256"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def public_jwk(private: Any) -> dict[str, Any]:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    else:
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    return jwk


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 of the required members, sorted, without whitespace."""
    required = {
        "OKP": ("crv", "kty", "x"),
        "EC": ("crv", "kty", "x", "y"),
        "RSA": ("e", "kty", "n"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


def ath_of(access_token: str) -> str:
    """RFC 9449 §4.2: base64url of the SHA-256 of the ASCII access token."""
    return b64(hashlib.sha256(access_token.encode("ascii")).digest())


def claims_for(
    method: str = "POST", url: str = URL, iat: Any = NOW, **extra: Any
) -> dict[str, Any]:
    return {"jti": "proof-1", "htm": method, "htu": url, "iat": iat, **extra}


def proof(claims: dict[str, Any], signer: Any = KEY, **header: Any) -> str:
    """A compact JWS over exactly this header and these claims (absent members: None)."""
    full = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": public_jwk(signer), **header}
    full = {name: value for name, value in full.items() if value is not None}
    if not isinstance(signer, ed25519.Ed25519PrivateKey):
        algorithm = full.pop("alg")
        return jwt.encode(claims, signer, algorithm=algorithm, headers=full)
    signing_input = f"{segment(full)}.{segment(claims)}"
    return f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"


def check(token: str, **request: Any) -> VerifiedProof:
    options: dict[str, Any] = {"method": "POST", "url": URL, "now": NOW, "skew": 5, "max_age": 60}
    options.update(request)
    return verify_proof(token, **options)


def refused(token: str, **request: Any) -> str:
    with pytest.raises(JWTRejected) as caught:
        check(token, **request)
    return caught.value.reason


# --- strategies -----------------------------------------------------------------------------

methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8),
)
hosts = st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,2}", fullmatch=True)
paths = st.lists(st.text("abcXYZ09-._~", max_size=5), max_size=3).map(
    lambda segments: "".join("/" + s for s in segments)
)
ports = st.one_of(st.just(""), st.integers(min_value=1, max_value=65535).map(lambda p: f":{p}"))
queries = st.one_of(st.just(""), st.text("ab=&c", max_size=8).map(lambda q: "?" + q))
fragments = st.one_of(st.just(""), st.text("abc", max_size=4).map(lambda f: "#" + f))
jtis = st.text(min_size=1, max_size=256)
access_tokens = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/", min_size=1
)


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """(scheme, host with port, path, query and fragment) of a request URL."""
    scheme = draw(st.sampled_from(["http", "https"]))
    return scheme, draw(hosts) + draw(ports), draw(paths), draw(queries) + draw(fragments)


def build(scheme: str, netloc: str, path: str, tail: str) -> str:
    return f"{scheme}://{netloc}{path}{tail}"


def mixed_case(data: st.DataObject, text: str) -> str:
    return "".join(c.upper() if data.draw(st.booleans()) else c for c in text)


# --- a proof made for the request -----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.data(),
    methods,
    urls(),
    jtis,
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=1, max_value=600),
    st.one_of(st.none(), access_tokens),
)
def test_a_proof_made_for_the_request_verifies_and_binds_its_key(
    data: st.DataObject,
    method: str,
    url: tuple[str, str, str, str],
    jti: str,
    skew: int,
    max_age: int,
    access_token: str | None,
) -> None:
    iat = data.draw(st.integers(min_value=NOW - max_age, max_value=NOW + skew))
    signer, _, algorithms = data.draw(st.sampled_from(SIGNERS))
    alg = data.draw(st.sampled_from(algorithms))
    extra = {} if access_token is None else {"ath": ath_of(access_token)}
    claims = claims_for(method, build(*url), iat, jti=jti, **extra)
    verified = check(
        proof(claims, signer, alg=alg),
        method=method,
        url=build(*url),
        skew=skew,
        max_age=max_age,
        access_token=access_token,
    )
    assert verified == VerifiedProof(jkt=rfc7638_thumbprint(public_jwk(signer)), jti=jti, iat=iat)


@pytest.mark.parametrize("alg", RSA_SIGNER[2])
def test_a_proof_with_an_rsa_2048_jwk_verifies(alg: str) -> None:
    """RS256 and PS256 are in DPOP_ALGORITHMS (advertised as dpop_signing_alg_values_supported)
    and 2048 bits is MIN_RSA_BITS: such a proof's header (about 550 bytes, its jwk inside)
    must not be refused for its size."""
    verified = check(proof(claims_for(), RSA, alg=alg))
    assert verified.jkt == rfc7638_thumbprint(public_jwk(RSA))


def test_the_thumbprint_oracle_is_rfc_7638s_own_example() -> None:
    """RFC 7638 §3.1: the example RSA key and its thumbprint."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR"
        "1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ"
        "5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbIS"
        "D08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kE"
        "gU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert rfc7638_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# --- htm (item 8) ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(methods, st.one_of(methods, st.sampled_from(["post", "Post", "POST ", ""])))
def test_htm_must_be_the_requests_method_exactly(method: str, htm: str) -> None:
    token = proof(claims_for(htm))
    if htm == method:
        check(token, method=method)
    else:
        assert refused(token, method=method) == "dpop_bad_htm"


@pytest.mark.parametrize("htm", [None, 1, ["POST"], {"m": "POST"}, True])
def test_htm_that_is_not_a_string_is_a_bad_htm(htm: Any) -> None:
    claims = claims_for()
    claims["htm"] = htm
    if htm is None:
        del claims["htm"]
    assert refused(proof(claims)) == "dpop_bad_htm"


# --- htu (item 9) ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.data(), urls(), st.text("ab=&c#", max_size=8))
def test_htu_ignores_query_fragment_and_the_case_of_scheme_and_host(
    data: st.DataObject, url: tuple[str, str, str, str], other_tail: str
) -> None:
    scheme, netloc, path, tail = url
    request = build(scheme, netloc, path, tail)
    # The same URL as the proof names it: another query and fragment, scheme and host in
    # any case, and "/" for an empty path.
    htu_path = "/" if path == "" and data.draw(st.booleans()) else path
    tail_of_htu = ("?" + other_tail) if data.draw(st.booleans()) else ""
    htu = build(mixed_case(data, scheme), mixed_case(data, netloc), htu_path, tail_of_htu)
    assert check(proof(claims_for(url=htu)), url=request).jti == "proof-1"


@settings(max_examples=200, deadline=None)
@given(st.data(), urls(), st.sampled_from(["scheme", "host", "port", "path", "path case"]))
def test_htu_of_another_scheme_host_port_or_path_is_refused(
    data: st.DataObject, url: tuple[str, str, str, str], change: str
) -> None:
    scheme, netloc, path, tail = url
    request = build(scheme, netloc, path, tail)
    if change == "scheme":
        scheme = "https" if scheme == "http" else "http"
    elif change == "host":
        netloc = "x" + netloc
    elif change == "port":
        netloc = netloc + "0" if ":" in netloc else netloc + ":8443"
    elif change == "path":
        path = path + data.draw(st.sampled_from(["/", "/x", "x"])) if path else "/x"
    else:
        if not any(c.isalpha() for c in path):
            path += "/x"
        else:
            path = path.swapcase()
    htu = build(scheme, netloc, path, tail)
    assert refused(proof(claims_for(url=htu)), url=request) == "dpop_bad_htu"


@pytest.mark.parametrize("side", ["proof", "request"])
@pytest.mark.parametrize("unreadable", ["http://[", "http://[/x", "https://]x/"])
def test_a_url_urlsplit_cannot_read_is_a_bad_htu(side: str, unreadable: str) -> None:
    htu, request = (unreadable, URL) if side == "proof" else (URL, unreadable)
    assert refused(proof(claims_for(url=htu)), url=request) == "dpop_bad_htu"


@pytest.mark.parametrize("htu", [None, 1, [URL], {"u": URL}, ""])
def test_htu_that_is_not_a_string_is_refused(htu: Any) -> None:
    claims = claims_for()
    claims["htu"] = htu
    if htu is None:
        del claims["htu"]
    assert refused(proof(claims)) == "jwt_bad_htu"


# --- iat (item 11) --------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=1, max_value=600),
    st.integers(min_value=-1300, max_value=200),
)
def test_iat_is_accepted_exactly_inside_the_window(skew: int, max_age: int, offset: int) -> None:
    iat = NOW + offset
    token = proof(claims_for(iat=iat))
    if NOW - max_age <= iat <= NOW + skew:
        assert check(token, skew=skew, max_age=max_age).iat == iat
    else:
        assert refused(token, skew=skew, max_age=max_age) == "dpop_stale"


@pytest.mark.parametrize(
    "iat", [None, "1800000000", True, [NOW], float("inf"), float("nan"), 2.0**53, 1e300]
)
def test_iat_that_is_not_a_finite_time_is_refused(iat: Any) -> None:
    claims = claims_for(iat=iat)
    if iat is None:
        del claims["iat"]
    assert refused(proof(claims)) == "jwt_bad_iat"


# --- jti ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.just("absent"),
        st.just(""),
        st.text(min_size=257, max_size=300),
        st.integers(),
        st.booleans(),
        st.lists(st.text(max_size=3), max_size=2),
    )
)
def test_jti_must_be_a_non_empty_string_of_at_most_256(jti: Any) -> None:
    claims = claims_for()
    if jti == "absent":
        del claims["jti"]
    else:
        claims["jti"] = jti
    assert refused(proof(claims)) == "jwt_bad_jti"


@settings(max_examples=100, deadline=None)
@given(jtis)
def test_any_jti_up_to_256_characters_is_returned_for_the_replay_check(jti: str) -> None:
    assert check(proof(claims_for(jti=jti))).jti == jti


# --- ath (item 12) --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    access_tokens,
    st.one_of(
        st.just("absent"), st.text(max_size=50), st.integers(), st.none(), access_tokens.map(ath_of)
    ),
)
def test_with_an_access_token_ath_must_be_its_hash(access_token: str, ath: Any) -> None:
    claims = claims_for()
    if ath != "absent":
        claims["ath"] = ath
    token = proof(claims)
    if ath == ath_of(access_token):
        check(token, access_token=access_token)
    else:
        assert refused(token, access_token=access_token) == "dpop_bad_ath"


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.text(max_size=20), st.integers(), st.none()))
def test_without_an_access_token_ath_is_not_read(ath: Any) -> None:
    check(proof(claims_for(ath=ath)))


# --- typ (item 4), jwk (item 7), signature and algorithm (items 5-6) ------------------------


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["DPoP+jwt", "JWT", "at+jwt"])))
def test_typ_must_be_dpop_jwt(typ: str | None) -> None:
    token = proof(claims_for(), typ=typ)
    if typ == "dpop+jwt":
        check(token)
    else:
        assert refused(token) == "dpop_wrong_typ"


def test_a_proof_without_jwk_is_refused() -> None:
    assert refused(proof(claims_for(), jwk=None)) == "dpop_missing_jwk"


@settings(max_examples=50, deadline=None)
@given(st.sets(st.sampled_from(sorted(PRIVATE_MEMBERS)), min_size=1), st.text(max_size=10))
def test_a_jwk_with_any_private_member_is_refused(members: set[str], value: str) -> None:
    jwk = {**public_jwk(KEY), **dict.fromkeys(members, value)}
    assert refused(proof(claims_for(), jwk=jwk)) == "dpop_private_jwk"


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=4).filter(lambda n: n not in PRIVATE_MEMBERS),
        st.one_of(st.text(max_size=8), st.integers(), st.none()),
        max_size=4,
    )
)
def test_a_jwk_that_is_not_a_public_key_is_refused(jwk: dict[str, Any]) -> None:
    assert refused(proof(claims_for(), jwk=jwk)) == "dpop_bad_jwk"


def test_an_rsa_key_below_2048_bits_is_refused_before_its_signature_is_checked() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the case)
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": public_jwk(weak)}
    token = f"{segment(header)}.{segment(claims_for())}.c2ln"
    assert refused(token) == "dpop_weak_key"


def test_a_proof_signed_by_another_key_than_its_jwk_is_refused() -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    assert refused(proof(claims_for(), other, jwk=public_jwk(KEY))) == "jwt_bad_signature"


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([*SIGNERS, RSA_SIGNER]),
    st.one_of(
        st.sampled_from(["none", "HS256", "ES256", "ES384", "EdDSA", "RS256", "PS256", "RS512"]),
        st.text(max_size=6),
    ),
)
def test_alg_must_be_one_of_the_jwks_algorithms(
    signing: tuple[Any, set[str], list[str]], alg: str
) -> None:
    signer, own, algorithms = signing
    signs_with = algorithms[0]
    token = proof(claims_for(), signer, alg=signs_with)
    head, body, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    if alg == signs_with:
        if signer is not RSA:  # (test_a_proof_with_an_rsa_2048_jwk_verifies)
            check(token)
        return
    forged = f"{segment({**header, 'alg': alg})}.{body}.{signature}"
    # An algorithm of the key's own over a signature made with another is a bad signature;
    # any other is refused before the signature is looked at.
    expected = "jwt_bad_signature" if alg in own else "jwt_alg_not_allowed"
    assert refused(forged) == expected
