"""The JOSE header rules for JWTs from outside (RFC 7515, RFC 8725), as properties.

``peek`` parses a compact JWS without trusting it: whatever the bytes, it returns the
header and claims or refuses with a stable reason, never another exception. A header
member this code reads must have its RFC 7515 type, ``crit`` is refused (we understand
no extension), the algorithm must belong to the key (RFC 8725 §3.1) and an attestation
has one of its own ``typ`` values (RFC 8725 §3.11), so no other JWT kind passes as one.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from authority.protocol import ATTESTATION_TYPES
from authority.tokens.inbound import (
    KID_REQUIRED,
    MAX_JWT_BYTES,
    JWTRejected,
    algorithms_for,
    candidate_keys,
    check_lifetime,
    find_key,
    key_set,
    peek,
    verify_attestation,
    verify_signature,
)

# --- building tokens ------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def compact(header: Any, claims: Any, signature: str = "c2ln") -> str:
    return f"{segment(header)}.{segment(claims)}.{signature}"


def reason(token: str) -> str:
    with pytest.raises(JWTRejected) as caught:
        peek(token)
    return caught.value.reason


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
#: The header members ``peek`` reads, and the JSON type RFC 7515 §4.1 / RFC 9449 §4.2 give them.
READ_MEMBERS = {"typ": str, "cty": str, "kid": str, "jwk": dict}
other_names = st.text(max_size=8).filter(lambda n: n not in {*READ_MEMBERS, "alg", "crit"})


@st.composite
def good_headers(draw: st.DrawFn) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": draw(st.text(max_size=10))}
    for name in ("typ", "cty", "kid"):
        if draw(st.booleans()):
            header[name] = draw(st.text(max_size=20))
    if draw(st.booleans()):
        header["jwk"] = draw(st.dictionaries(st.text(max_size=4), json_values, max_size=3))
    header.update(draw(st.dictionaries(other_names, json_values, max_size=3)))
    return header


claims_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def wrong_type_for(kind: type) -> st.SearchStrategy[Any]:
    # bool is not str and not dict; every JSON value not of ``kind`` is wrong.
    return json_values.filter(lambda v: not isinstance(v, kind))


# --- peek -----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(good_headers(), claims_objects, st.text("abc-_", max_size=20))
def test_a_well_formed_jws_reads_back_exactly(
    header: dict[str, Any], claims: dict[str, Any], signature: str
) -> None:
    token = compact(header, claims, signature)
    if len(token) > MAX_JWT_BYTES:
        assert reason(token) == "jwt_too_large"
        return
    unverified = peek(token)
    assert unverified.raw == token
    assert unverified.header == header
    assert unverified.claims == claims


@settings(max_examples=150, deadline=None)
@given(st.data(), good_headers(), st.sampled_from(sorted(READ_MEMBERS)))
def test_a_read_member_of_another_json_type_is_malformed(
    data: st.DataObject, header: dict[str, Any], member: str
) -> None:
    value = data.draw(wrong_type_for(READ_MEMBERS[member]))
    token = compact({**header, member: value}, {"iss": "a"})
    assert reason(token) == "jwt_malformed"


@settings(max_examples=150, deadline=None)
@given(good_headers(), st.one_of(st.just("absent"), wrong_type_for(str)))
def test_alg_must_be_present_and_a_string(header: dict[str, Any], alg: Any) -> None:
    if alg == "absent":
        del header["alg"]
    else:
        header["alg"] = alg
    assert reason(compact(header, {"iss": "a"})) == "jwt_malformed"


@settings(max_examples=150, deadline=None)
@given(good_headers(), json_values)
def test_any_crit_is_refused(header: dict[str, Any], crit: Any) -> None:
    # RFC 7515 §4.1.11: a recipient that understands no extension must refuse any crit.
    assert reason(compact({**header, "crit": crit}, {"iss": "a"})) == "jwt_unsupported_crit"


not_objects = json_values.filter(lambda v: not isinstance(v, dict))


@settings(max_examples=150, deadline=None)
@given(good_headers(), not_objects, st.booleans())
def test_a_header_or_claims_that_is_not_an_object_is_malformed(
    header: dict[str, Any], other: Any, in_header: bool
) -> None:
    token = compact(other, {"iss": "a"}) if in_header else compact(header, other)
    assert reason(token) == "jwt_malformed"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text("abcXYZ019-_", max_size=6), max_size=6))
def test_anything_but_three_segments_with_a_header_and_payload_is_malformed(
    parts: list[str],
) -> None:
    good = compact({"alg": "EdDSA"}, {"iss": "a"}).split(".")
    if len(parts) == 3:
        # Three segments, but the header or the payload is empty.
        parts = ["", good[1], parts[2]] if not parts[0] else [good[0], "", parts[2]]
    assert reason(".".join(parts)) == "jwt_malformed"


@settings(max_examples=150, deadline=None)
@given(good_headers(), claims_objects, st.booleans())
def test_padded_base64url_is_malformed(
    header: dict[str, Any], claims: dict[str, Any], in_header: bool
) -> None:
    # RFC 7515 §2: base64url "with all trailing '=' characters omitted".
    head, body, signature = compact(header, claims).split(".")
    if in_header:
        head += "="
    else:
        body += "=="
    assert reason(f"{head}.{body}.{signature}") == "jwt_malformed"


@pytest.mark.parametrize("in_header", [True, False])
def test_base64_that_is_not_base64url_or_not_canonical_is_malformed(in_header: bool) -> None:
    """The signature is checked over the segments as sent, their members as ``peek``
    decoded them: one strict decoding (RFC 7515 §2), no '+' or '/', no stray bits."""
    head, body, signature = compact({"alg": "EdDSA", "typ": "JWT"}, {"sub": "s"}).split(".")
    for bad in ("+", "/"):
        segment = (head if in_header else body).replace("_", bad).replace("-", bad)
        if segment == (head if in_header else body):  # no such character: make one
            segment = segment[:-1] + bad
        text = f"{segment}.{body}.{signature}" if in_header else f"{head}.{segment}.{signature}"
        assert reason(text) == "jwt_malformed"
    # "e30" is "{}"; "e31" has the same bytes with a non-zero stray bit.
    stray = f"e31.{body}.{signature}" if in_header else f"{head}.e31.{signature}"
    assert reason(stray) == "jwt_malformed"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.booleans())
def test_bytes_that_are_not_utf8_json_are_malformed(raw: bytes, in_header: bool) -> None:
    try:
        json.loads(raw)
    except ValueError:
        pass
    else:
        return  # valid JSON text: not this test's case
    good = compact({"alg": "EdDSA"}, {"iss": "a"}).split(".")
    good[0 if in_header else 1] = b64(raw) or "AA"
    assert reason(".".join(good)) == "jwt_malformed"


@settings(max_examples=50, deadline=None)
@given(good_headers(), st.integers(min_value=1, max_value=3 * MAX_JWT_BYTES))
def test_size_is_checked_before_anything_else(header: dict[str, Any], extra: int) -> None:
    token = compact(header, {"pad": ""}, "A" * (MAX_JWT_BYTES + extra))
    assert reason(token) == "jwt_too_large"
    assert reason("." * (MAX_JWT_BYTES + extra)) == "jwt_too_large"


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text("eyJabc.=_-", max_size=60)))
def test_any_text_is_parsed_or_refused_never_an_exception(text: str) -> None:
    reasons = {"jwt_malformed", "jwt_too_large", "jwt_unsupported_crit"}
    try:
        peek(text)
    except JWTRejected as exc:
        refused: str | None = exc.reason
    else:
        refused = None
    assert refused is None or refused in reasons


# --- algorithms and keys (RFC 8725 §3.1) ----------------------------------------------------

_ED25519 = [ed25519.Ed25519PrivateKey.generate() for _ in range(3)]
_P256 = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
_RSA = [rsa.generate_private_key(public_exponent=65537, key_size=2048)]


def public_jwk(private: Any, kid: str) -> dict[str, Any]:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        text = OKPAlgorithm.to_jwk(private.public_key())
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        text = ECAlgorithm.to_jwk(private.public_key())
    else:
        text = RSAAlgorithm.to_jwk(private.public_key())
    return {**json.loads(text), "kid": kid}


#: (private key, the algorithms RFC 8725 §3.1 lets it sign with, one it signs with)
KEYS: list[tuple[Any, set[str], str]] = [
    *((k, {"EdDSA", "Ed25519"}, "EdDSA") for k in _ED25519),
    *((k, {"ES256"}, "ES256") for k in _P256),
    *((k, {"PS256", "PS384", "RS256"}, "RS256") for k in _RSA),
]
ALGS = ["EdDSA", "Ed25519", "ES256", "ES384", "ES512", "PS256", "PS384", "RS256"]
NEVER = ["none", "None", "HS256", "HS384", "HS512", "RS512", "ES256K", ""]
any_alg = st.one_of(st.sampled_from(ALGS + NEVER), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(KEYS))), min_size=1, max_size=6, unique=True),
    any_alg,
    st.integers(min_value=1, max_value=4),
)
def test_without_kid_the_candidates_are_the_keys_of_the_headers_alg(
    chosen: list[int], alg: str, most: int
) -> None:
    registered = [(KEYS[i], f"k{i}") for i in chosen]
    jwks = json.dumps({"keys": [public_jwk(k[0], kid) for k, kid in registered]})
    expected = [kid for (_, algs, _), kid in registered if alg in algs]
    if not expected:
        with pytest.raises(JWTRejected, match="jwt_alg_not_allowed"):
            candidate_keys(jwks, {"alg": alg}, max_without_kid=most)
    elif len(expected) > most:
        with pytest.raises(JWTRejected, match=KID_REQUIRED):
            candidate_keys(jwks, {"alg": alg}, max_without_kid=most)
    else:
        found = candidate_keys(jwks, {"alg": alg}, max_without_kid=most)
        assert [key.kid for key in found] == expected


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(range(len(KEYS))), st.one_of(json_scalars, st.text(max_size=6)))
def test_a_kid_names_exactly_one_registered_key(index: int, kid: Any) -> None:
    jwks = json.dumps({"keys": [public_jwk(KEYS[index][0], "mine")]})
    if kid == "mine":
        assert find_key(jwks, kid).kid == "mine"
    elif not isinstance(kid, str) or not kid:
        with pytest.raises(JWTRejected, match="jwt_missing_kid"):
            find_key(jwks, kid)
    else:
        with pytest.raises(JWTRejected, match="jwt_unknown_kid"):
            find_key(jwks, kid)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(len(KEYS))), any_alg)
def test_a_signature_is_checked_only_under_an_algorithm_of_the_key(index: int, alg: str) -> None:
    private, allowed, signs_with = KEYS[index]
    jwks = json.dumps({"keys": [public_jwk(private, "k")]})
    key = find_key(jwks, "k")
    assert algorithms_for(key) == allowed
    # A real signature by the key, under the header's alg where the key can make one.
    alg_for_signing = alg if alg in allowed and alg != "Ed25519" else signs_with
    token = jwt.encode({"iss": "a"}, private, algorithm=alg_for_signing, headers={"kid": "k"})
    if alg != alg_for_signing:
        head, body, signature = token.split(".")
        header = {**json.loads(base64.urlsafe_b64decode(head + "==")), "alg": alg}
        token = f"{segment(header)}.{body}.{signature}"
    unverified = peek(token)
    if alg not in allowed:
        with pytest.raises(JWTRejected, match="jwt_alg_not_allowed"):
            verify_signature(unverified, key, allowed)
    elif alg == alg_for_signing:
        assert verify_signature(unverified, key, allowed) == {"iss": "a"}
    else:
        # Ed25519 named in the header over an EdDSA signature: the same algorithm
        # (RFC 9864), but the header is part of the signed input, so not this signature.
        with pytest.raises(JWTRejected, match="jwt_bad_signature"):
            verify_signature(unverified, key, allowed)


# --- attestations: typ and the key they name (RFC 8725 §3.10, §3.11) ------------------------

AGENT = "agt_1"
AUDIENCE = "http://127.0.0.1:8400"
NOW = 1_800_000_000
AGENT_KEY = _ED25519[0]
AGENT_JWKS = json.dumps({"keys": [public_jwk(AGENT_KEY, "agent-key")]})


def attestation(
    header: dict[str, Any], signer: ed25519.Ed25519PrivateKey = AGENT_KEY, **claims: Any
) -> str:
    """Signed here rather than by a JWT library, so that the header is exactly ``header``."""
    body = {"iss": AGENT, "sub": AGENT, "aud": AUDIENCE, "iat": NOW, "exp": NOW + 30}
    body.update(jti="j-1", **claims)
    signing_input = f"{segment({'alg': 'EdDSA', **header})}.{segment(body)}"
    return f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"


def verify(token: str, jwks: str = AGENT_JWKS) -> Any:
    return verify_attestation(
        peek(token),
        agent_id=AGENT,
        jwks_json=jwks,
        audiences={AUDIENCE},
        now=NOW,
        skew=5,
        max_lifetime=60,
        max_keys_without_kid=3,
    )


other_typs = st.one_of(
    st.sampled_from(["at+jwt", "dpop+jwt", "delegation+jwt", "jwt", "JWT ", "application/jwt"]),
    st.text(max_size=30),
).filter(lambda typ: typ not in ATTESTATION_TYPES)


@settings(max_examples=200, deadline=None)
@given(other_typs)
def test_an_attestation_of_any_other_typ_is_refused_before_its_key_is_looked_up(typ: str) -> None:
    # Signed by the agent's own key, and still refused: the typ says another kind of JWT.
    with pytest.raises(JWTRejected, match="jwt_wrong_typ"):
        verify(attestation({"kid": "agent-key", "typ": typ}))
    # The typ is checked first: not even a kid is needed to be refused for it.
    with pytest.raises(JWTRejected, match="jwt_wrong_typ"):
        verify(attestation({"typ": typ}), jwks='{"keys": []}')


@pytest.mark.parametrize("typ", sorted(ATTESTATION_TYPES, key=str))
def test_each_attestation_typ_is_accepted(typ: str | None) -> None:
    header = {"kid": "agent-key"} if typ is None else {"kid": "agent-key", "typ": typ}
    verified = verify(attestation(header))
    assert (verified.agent_id, verified.jti) == (AGENT, "j-1")
    assert verified.jkt == key_set(AGENT_JWKS).keys[0].thumbprint()


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["jwk", "jku", "x5u", "x5c"]), st.booleans())
def test_a_key_named_by_the_token_itself_is_never_used(member: str, with_kid: bool) -> None:
    attacker = ed25519.Ed25519PrivateKey.generate()
    values = {
        "jwk": public_jwk(attacker, "agent-key"),
        "jku": "https://attacker.example/jwks",
        "x5u": "https://attacker.example/cert",
        "x5c": ["MIIB"],
    }
    header = {member: values[member], **({"kid": "agent-key"} if with_kid else {})}
    with pytest.raises(JWTRejected, match="jwt_bad_signature"):
        verify(attestation(header, signer=attacker))


# --- lifetime (RFC 7523 §3, items 4-6) ------------------------------------------------------

times = st.integers(min_value=NOW - 500, max_value=NOW + 500)


@settings(max_examples=400, deadline=None)
@given(
    times,
    times,
    st.one_of(st.none(), times),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=1, max_value=300),
)
def test_lifetime_accepts_exactly_the_fresh_window(
    exp: int, iat: int, nbf: int | None, skew: int, max_lifetime: int
) -> None:
    claims: dict[str, int] = {"exp": exp, "iat": iat}
    if nbf is not None:
        claims["nbf"] = nbf
    usable_until = min(exp, iat + max_lifetime)
    broken = {
        "jwt_lifetime_too_long": exp < iat,
        "jwt_expired": usable_until <= NOW - skew,
        "jwt_issued_in_future": iat > NOW + skew,
        "jwt_not_yet_valid": nbf is not None and nbf > NOW + skew,
    }
    if not any(broken.values()):
        assert check_lifetime(claims, now=NOW, skew=skew, max_lifetime=max_lifetime) == (
            usable_until,
            iat,
        )
        return
    with pytest.raises(JWTRejected) as caught:
        check_lifetime(claims, now=NOW, skew=skew, max_lifetime=max_lifetime)
    # The reason names a rule these claims break.
    assert broken[caught.value.reason]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["exp", "iat", "nbf"]),
    st.one_of(
        st.booleans(),
        st.text(max_size=5),
        st.none(),
        st.lists(st.integers(), max_size=2),
        st.sampled_from([float("inf"), float("-inf"), float("nan"), 2.0**53, -(2.0**53), 1e300]),
    ),
)
def test_a_time_that_is_not_a_finite_number_is_refused(name: str, value: Any) -> None:
    claims: dict[str, Any] = {"exp": NOW + 10, "iat": NOW, "nbf": NOW, name: value}
    with pytest.raises(JWTRejected, match=f"jwt_bad_{name}"):
        check_lifetime(claims, now=NOW, skew=5, max_lifetime=60)


def test_a_credential_parse_is_kept_for_its_exact_bytes_only() -> None:
    from authority.tokens import inbound

    token = jwt.encode({"jti": "dlg_1"}, "k" * 32, algorithm="HS256", headers={"kid": "a"})
    first = inbound.peek_credential(token)
    assert inbound.peek_credential(token) is first
    assert first == inbound.peek(token)
    # Other bytes, even one character, are parsed (and refused) on their own.
    with pytest.raises(JWTRejected):
        inbound.peek_credential("!" + token[1:])
    with pytest.raises(JWTRejected):
        inbound.peek_credential(token.replace(".", "..", 1))
    assert all(kept == inbound.peek(raw) for raw, kept in inbound._credential_parses.items())


def test_the_kept_credential_parses_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from authority.tokens import inbound

    monkeypatch.setattr(inbound, "CREDENTIAL_PARSES", 3)
    for i in range(10):
        inbound.peek_credential(jwt.encode({"jti": str(i)}, "k" * 32, algorithm="HS256"))
        assert len(inbound._credential_parses) <= 3
