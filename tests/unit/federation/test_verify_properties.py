"""Whatever a correctly signed token of a trusted issuer says, verification ends in an
identity or a ``WorkloadRejected``, never another exception (a 5xx): every claim a
preset reads is given arbitrary JSON, under a valid signature so that the shape checks
are reached, not just the signature check."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authority.clock import FrozenClock
from authority.federation.model import KeySource, Preset, TrustDomain
from authority.federation.presets import PRESET_CLAIMS
from authority.federation.verify import WorkloadRejected, WorkloadVerifier
from tests.federation_issuers import NOW, TestIssuer, new_key

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_READ = sorted(
    {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "kubernetes.io", "mapped"}
    | set().union(*PRESET_CLAIMS.values())
)
_ISSUERS = {
    preset: TestIssuer(f"p-{preset.value}", preset, keys=[new_key("ES256")]) for preset in Preset
}
_TOKENS = {
    Preset.SPIFFE: lambda i: i.spiffe_svid(),
    Preset.KUBERNETES: lambda i: i.kubernetes_token(),
    Preset.GITHUB: lambda i: i.github_token(),
    Preset.GITLAB: lambda i: i.gitlab_token(),
    Preset.OIDC: lambda i: i.oidc_token(),
}


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def _domain(preset: Preset) -> TrustDomain:
    issuer = _ISSUERS[preset]
    source = KeySource.SPIFFE_BUNDLE if preset is Preset.SPIFFE else KeySource.STATIC_JWKS
    return issuer.domain(key_source=source, claim_mapping={"mapped": "extra"})


_DOMAINS = {preset: _domain(preset) for preset in Preset}


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[asyncio.AbstractEventLoop, WorkloadVerifier]]:
    """One loop and one verifier for every example (static keys: it never fetches)."""
    loop = asyncio.new_event_loop()
    verifier = WorkloadVerifier(clock=FrozenClock(NOW))
    yield loop, verifier
    loop.run_until_complete(verifier.aclose())
    loop.close()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(list(Preset)),
    st.dictionaries(st.sampled_from(_READ), _JSON, max_size=6),
    st.dictionaries(st.sampled_from(["typ", "kid", "cty", "x5t", "b64", "zip"]), _JSON, max_size=2),
)
def test_signed_nonsense_is_refused_cleanly(
    running: tuple[asyncio.AbstractEventLoop, WorkloadVerifier],
    preset: Preset,
    overrides: dict[str, Any],
    header: dict[str, Any],
) -> None:
    loop, verifier = running
    issuer = _ISSUERS[preset]
    claims = {**_claims(_TOKENS[preset](issuer)), **overrides}
    headers = {k: v for k, v in header.items() if k != "kid" or isinstance(v, str)}
    token = issuer.mint(claims, headers=headers)
    try:
        identity = loop.run_until_complete(verifier.verify(_DOMAINS[preset], token, NOW))
    except WorkloadRejected:
        return
    assert all(isinstance(v, str) for v in identity.claims.values())
    assert isinstance(identity.subject, str)
