"""validate_public_jwks: each rule has a case that passes only while the rule holds."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authority.errors import InvalidRequest
from authority.tokens.jwks import MAX_KEYS, key_set, validate_public_jwks
from tests.unit.management.keys import ed25519_jwk, p256_jwk, rsa_jwk


def rejected(obj: Any) -> str:
    with pytest.raises(InvalidRequest) as info:
        validate_public_jwks(obj)
    return info.value.description


def test_accepts_each_supported_key_type() -> None:
    keys = [
        ed25519_jwk("a", alg="EdDSA", use="sig"),
        ed25519_jwk("b", alg="Ed25519", key_ops=["verify"]),
        p256_jwk("c", alg="ES256"),
        {**ECKey.generate_key("P-384").as_dict(private=False), "kid": "d", "alg": "ES384"},
        {**ECKey.generate_key("P-521").as_dict(private=False), "kid": "e", "alg": "ES512"},
        rsa_jwk("f", alg="PS256"),
        rsa_jwk("g", alg="RS256"),
    ]
    result = validate_public_jwks({"keys": keys})
    assert result == {"keys": keys}
    assert [k.kid for k in key_set(result)] == list("abcdefg")


def test_the_result_is_a_copy_of_exactly_what_was_checked() -> None:
    jwk = ed25519_jwk()
    result = validate_public_jwks({"keys": [jwk]})
    jwk["d"] = "added later"
    assert "d" not in result["keys"][0]


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_rejects_private_members(member: str) -> None:
    assert "private" in rejected({"keys": [ed25519_jwk(**{member: "AAAA"})]})


def test_rejects_real_private_keys() -> None:
    for key in (
        OKPKey.generate_key("Ed25519"),
        ECKey.generate_key("P-256"),
        RSAKey.generate_key(2048),
    ):
        private = {**key.as_dict(private=True), "kid": "x"}
        assert "private" in rejected({"keys": [private]})


def test_rejects_symmetric_keys() -> None:
    assert "Symmetric" in rejected({"keys": [{"kty": "oct", "kid": "s"}]})


def test_rejects_rsa_below_2048_bits() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weak = rsa.generate_private_key(65537, 1024)  # noqa: S505
        small = RSAKey.import_key(weak.public_key())
    assert "2048" in rejected({"keys": [{**small.as_dict(), "kid": "r"}]})


@pytest.mark.parametrize(
    "key",
    [
        ECKey.generate_key("secp256k1"),
        OKPKey.generate_key("X25519"),
        OKPKey.generate_key("X448"),
        OKPKey.generate_key("Ed448"),
    ],
    ids=["secp256k1", "X25519", "X448", "Ed448"],
)
def test_rejects_unsupported_curves(key: ECKey | OKPKey) -> None:
    assert "curve" in rejected({"keys": [{**key.as_dict(private=False), "kid": "c"}]})


def test_rejects_a_key_without_kid() -> None:
    jwk = ed25519_jwk()
    del jwk["kid"]
    assert "kid" in rejected({"keys": [jwk]})


def test_rejects_duplicate_kids() -> None:
    assert "same kid" in rejected({"keys": [ed25519_jwk("k"), p256_jwk("k")]})


def test_rejects_the_same_key_twice() -> None:
    jwk = ed25519_jwk("one")
    assert "same key" in rejected({"keys": [jwk, {**jwk, "kid": "two"}]})


@pytest.mark.parametrize("use", ["enc", "other"])
def test_rejects_use_other_than_sig(use: str) -> None:
    assert "use" in rejected({"keys": [ed25519_jwk(use=use)]})


@pytest.mark.parametrize("ops", [["sign"], ["verify", "sign"], ["encrypt"], "verify", []])
def test_rejects_key_ops_other_than_verify(ops: Any) -> None:
    assert "key_ops" in rejected({"keys": [ed25519_jwk(key_ops=ops)]})


def test_bounds_the_number_of_keys() -> None:
    many = [ed25519_jwk(f"k{i}") for i in range(MAX_KEYS + 1)]
    assert "at most" in rejected({"keys": many})
    validate_public_jwks({"keys": many[:MAX_KEYS]})


@pytest.mark.parametrize(
    ("jwk_factory", "alg"),
    [
        (ed25519_jwk, "ES256"),
        (ed25519_jwk, "HS256"),
        (ed25519_jwk, "none"),
        (p256_jwk, "ES384"),
        (p256_jwk, "EdDSA"),
        (rsa_jwk, "ES256"),
        (rsa_jwk, "RS512"),  # not among the algorithms agents may sign with
    ],
)
def test_rejects_an_alg_that_does_not_fit_the_key(jwk_factory: Any, alg: str) -> None:
    assert "alg" in rejected({"keys": [jwk_factory(alg=alg)]})


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        "keys",
        {},
        {"keys": []},
        {"keys": "x"},
        {"keys": [1]},
        {"keys": [ed25519_jwk()], "extra": 1},
    ],
)
def test_rejects_malformed_sets(obj: Any) -> None:
    rejected(obj)


@pytest.mark.parametrize(
    "change",
    [
        {"x": "AAAA"},  # wrong length
        {"x": "not base64!"},
        {"x": 5},
        {"x": ""},
        {"kid": 5},
        {"kid": "x" * 129},
        {"kid": "bad\nkid"},
        {"kty": "XX"},
        {"kty": None},
        {"x5c": ["MIIB"]},
        {"jku": "https://evil.example/jwks"},
        {"x": "A" * 5000},
    ],
)
def test_rejects_malformed_keys(change: dict[str, Any]) -> None:
    rejected({"keys": [{**ed25519_jwk(), **change}]})


def test_rejects_an_ec_point_off_the_curve() -> None:
    jwk = p256_jwk()
    assert "valid" in rejected({"keys": [{**jwk, "y": jwk["x"]}]})


def test_never_echoes_the_input() -> None:
    marker = "MARKER-abc123"
    for change in ({"kid": marker + "\n"}, {"x": marker}, {"crv": marker}, {marker: "x"}):
        assert marker not in rejected({"keys": [{**ed25519_jwk(), **change}]})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["keys", "kty", "kid", "crv", "x", "y", "n", "e", "alg", "use", "d"])
            | st.text(max_size=5),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@given(JSON)
def test_any_json_is_accepted_or_refused_with_invalid_request(obj: Any) -> None:
    try:
        result = validate_public_jwks(obj)
    except InvalidRequest:
        return
    json.dumps(result)  # pragma: no cover - random input is practically never a valid key
