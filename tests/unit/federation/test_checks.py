"""A trust domain is checked before it is kept: each refusal, and what passes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from authority.federation.checks import check_trust_domain
from authority.federation.model import KeySource, Preset, TrustDomain
from authority.management.field_errors import Refused
from tests.federation_issuers import TestIssuer

GITHUB = TrustDomain(
    id="td-gh",
    name="github",
    preset=Preset.GITHUB,
    issuer="https://token.actions.githubusercontent.com",
    audience="https://authority.test",
    key_source=KeySource.DISCOVERY,
    key_location=None,
    static_jwks=None,
)
KEYS = TestIssuer("static", Preset.OIDC).jwks()
BUNDLE = TestIssuer("spire", Preset.SPIFFE).bundle()


def _with(domain: TrustDomain = GITHUB, **changes: Any) -> TrustDomain:
    return dataclasses.replace(domain, **changes)


@pytest.mark.parametrize(
    "domain",
    [
        GITHUB,
        _with(key_source=KeySource.JWKS_URI, key_location="https://x.test/jwks"),
        _with(key_source=KeySource.STATIC_JWKS, static_jwks=KEYS),
        _with(
            key_source=KeySource.STATIC_JWKS,
            static_jwks={
                "keys": [{"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"}, *KEYS["keys"]]
            },
        ),
        _with(issuer="http://127.0.0.1:9000/issuer"),
        _with(
            preset=Preset.SPIFFE,
            issuer="spiffe://example.org",
            key_source=KeySource.SPIFFE_BUNDLE,
            static_jwks=BUNDLE,
        ),
        _with(
            preset=Preset.SPIFFE,
            issuer="spiffe://example.org",
            key_source=KeySource.SPIFFE_BUNDLE,
            key_location="https://spire.test/bundle",
        ),
        _with(preset=Preset.SPIFFE, issuer="https://oidc.spire.test"),
        _with(claim_mapping={"workflow": "workflow_name"}),
    ],
)
def test_usable_domains_pass(domain: TrustDomain) -> None:
    check_trust_domain(domain)


@pytest.mark.parametrize(
    ("domain", "sentence"),
    [
        (_with(issuer=""), "issuer must be 1 to"),
        (_with(issuer="http://issuer.example.com"), "https URL"),
        (_with(issuer="https://issuer.test/?a=b"), "https URL"),
        (_with(issuer="spiffe://example.org"), "https URL"),  # only SPIFFE's may be
        (_with(preset=Preset.SPIFFE, issuer="spiffe://Example.org"), "https URL"),
        (_with(audience=""), "audience"),
        (_with(audience="a\nb"), "audience"),
        (_with(status="paused"), "status"),
        (_with(key_source=KeySource.SPIFFE_BUNDLE, static_jwks=BUNDLE), "spiffe preset only"),
        (_with(preset=Preset.SPIFFE, issuer="spiffe://example.org"), "Discovery needs"),
        (_with(key_source=KeySource.JWKS_URI), "needs a key_location"),
        (_with(static_jwks=KEYS), "Static keys are for"),
        (_with(key_source=KeySource.STATIC_JWKS), "needs static keys"),
        (_with(key_source=KeySource.STATIC_JWKS, static_jwks={"keys": []}), "no key that"),
        (_with(key_source=KeySource.STATIC_JWKS, static_jwks=BUNDLE), "no key that"),
        (
            _with(
                preset=Preset.SPIFFE,
                issuer="spiffe://example.org",
                key_source=KeySource.SPIFFE_BUNDLE,
                static_jwks=KEYS,
            ),
            "use jwt-svid",
        ),
        (
            _with(
                preset=Preset.SPIFFE,
                issuer="spiffe://example.org",
                key_source=KeySource.SPIFFE_BUNDLE,
            ),
            "either static keys or",
        ),
        (
            _with(key_location="http://issuer.example.com/.well-known/openid-configuration"),
            "key_location must be",
        ),
        (_with(key_location="https://user:pw@issuer.test/jwks"), "key_location must be"),
        (_with(claim_mapping={"x": "repository"}), "preset's"),
    ],
)
def test_unusable_domains_are_refused(domain: TrustDomain, sentence: str) -> None:
    with pytest.raises(Refused, match=sentence):
        check_trust_domain(domain)
