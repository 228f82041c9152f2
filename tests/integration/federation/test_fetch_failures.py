"""Fetches that fail in ways no issuer should answer with: each is the domain being
unavailable (503 for that domain), never an error out of the verifier, and the issuer
is still asked at most once per interval."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from authority.clock import FrozenClock
from authority.federation.addresses import PublicOnlyTransport
from authority.federation.keys import KeyLimits
from authority.federation.model import KeySource, Preset
from authority.federation.verify import IssuerUnavailable, WorkloadVerifier
from tests.federation_issuers import NOW, TestIssuer, serving_issuers


async def test_an_unforeseen_fetch_error_is_a_failed_fetch(key_clock: FrozenClock) -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        raise LookupError("what no fetch is written to expect")

    github = TestIssuer("github", Preset.GITHUB)
    limits = KeyLimits(max_age=300, refresh_min_interval=30, fetch_timeout=2)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        verifier = WorkloadVerifier(limits=limits, clock=key_clock, http=http)
        domain = github.domain(key_source=KeySource.JWKS_URI)
        with pytest.raises(IssuerUnavailable, match="issuer_fetch_failed"):
            await verifier.verify(domain, github.github_token(), NOW)
        for _ in range(3):
            with pytest.raises(IssuerUnavailable, match="issuer_recently_failed"):
                await verifier.verify(domain, github.github_token(), NOW)
        assert len(asked) == 1


class _OddCurves(TestIssuer):
    def jwks(self) -> dict[str, object]:
        legacy = {"kty": "EC", "crv": "P-192", "x": "AAAA", "y": "AAAA", "kid": "legacy"}
        return {"keys": [legacy, *super().jwks()["keys"]]}


async def test_a_jwks_with_a_key_of_an_unknown_curve_still_verifies(
    verifier: WorkloadVerifier,
) -> None:
    github = _OddCurves("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain(key_source=KeySource.JWKS_URI)
        identity = await verifier.verify(domain, github.github_token(), NOW)
        assert identity.claims["repository"] == "octo-org/octo-repo"


async def test_a_cancelled_fetch_after_a_failure_does_not_hold_the_domain(
    verifier: WorkloadVerifier, key_clock: FrozenClock
) -> None:
    github = TestIssuer("github", Preset.GITHUB, mode="error")
    async with serving_issuers(github):
        domain = github.domain()
        with pytest.raises(IssuerUnavailable, match="issuer_http_status"):
            await verifier.verify(domain, github.github_token(), NOW)
        key_clock.advance(31)
        github.mode = "hang"
        github.asked.clear()
        pending = asyncio.create_task(verifier.verify(domain, github.github_token(), NOW))
        await github.asked.wait()
        pending.cancel()  # the client went away: the issuer said nothing
        with pytest.raises(asyncio.CancelledError):
            await pending
        github.mode = "up"
        identity = await verifier.verify(domain, github.github_token(), NOW)
        assert identity.claims["repository"] == "octo-org/octo-repo"


@pytest.mark.parametrize(
    "jwks_uri", ["https://xn--a.com/jwks", "https://keys.example.com:abc/jwks"]
)
async def test_a_discovered_key_location_the_client_cannot_use_is_refused(
    verifier: WorkloadVerifier, jwks_uri: str
) -> None:
    github = TestIssuer("github", Preset.GITHUB, jwks_uri=jwks_uri)
    async with serving_issuers(github):
        for _ in range(3):
            with pytest.raises(IssuerUnavailable):
                await verifier.verify(github.domain(), github.github_token(), NOW)
        assert github.requests["/.well-known/openid-configuration"] == 1


async def test_loopback_issuers_are_refused_unless_allowed(key_clock: FrozenClock) -> None:
    verifier = WorkloadVerifier(clock=key_clock)  # the production default
    github = TestIssuer("github", Preset.GITHUB)
    try:
        async with serving_issuers(github):
            with pytest.raises(IssuerUnavailable, match="key_location_refused"):
                await verifier.verify(github.domain(), github.github_token(), NOW)
            assert not github.requests
    finally:
        await verifier.aclose()


async def test_key_documents_are_asked_for_and_read_uncompressed(
    verifier: WorkloadVerifier,
) -> None:
    # A compressed answer is decoded a chunk at a time, past the size bound: refused.
    github = TestIssuer("github", Preset.GITHUB, mode="gzip")
    async with serving_issuers(github):
        with pytest.raises(IssuerUnavailable, match="issuer_document_compressed"):
            await verifier.verify(github.domain(), github.github_token(), NOW)
        assert github.encodings == ["identity"]


@pytest.mark.parametrize(
    "jwks_uri",
    [
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://10.0.0.7/jwks",
        "https://[fd00:ec2::254]/latest/meta-data/",
    ],
)
async def test_a_discovery_document_cannot_send_the_fetch_into_the_network(
    verifier: WorkloadVerifier, jwks_uri: str
) -> None:
    # The discovery document is the issuer's text: it is checked like a key location.
    github = TestIssuer("github", Preset.GITHUB, jwks_uri=jwks_uri)
    async with serving_issuers(github):
        with pytest.raises(IssuerUnavailable, match="key_location_refused"):
            await verifier.verify(github.domain(), github.github_token(), NOW)


async def test_no_connection_is_kept_for_another_host_at_the_same_address(
    verifier: WorkloadVerifier,
) -> None:
    # A connection is opened to the address checked and verified for one host's name:
    # reusing it for another host at that address would skip that host's TLS check.
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        await verifier.verify(github.domain(), github.github_token(), NOW)
        transport = verifier.keys._http._transport
        assert isinstance(transport, PublicOnlyTransport)
        assert not transport._inner._pool.connections
