"""Each domain's keys: fetched once and kept for a bounded time, refreshed for a
rotation at most once per interval, and an issuer that fails refuses its own domain's
tokens (503) while every other domain keeps verifying."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from authority.clock import FrozenClock
from authority.federation.keys import KeyLimits
from authority.federation.model import KeySource, Preset
from authority.federation.verify import IssuerUnavailable, WorkloadRejected, WorkloadVerifier
from tests.federation_issuers import NOW, TestIssuer, new_key, serving_issuers

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/.well-known/jwks"


async def test_keys_are_fetched_once_and_kept_for_their_max_age(
    verifier: WorkloadVerifier, key_clock: FrozenClock
) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()
        for _ in range(3):
            await verifier.verify(domain, github.github_token(), NOW)
        assert github.requests == {DISCOVERY: 1, JWKS: 1}
        key_clock.advance(299)
        await verifier.verify(domain, github.github_token(), NOW)
        assert github.requests[JWKS] == 1
        key_clock.advance(2)  # past the 300 s max age: fetched again
        await verifier.verify(domain, github.github_token(), NOW)
        assert github.requests == {DISCOVERY: 2, JWKS: 2}


@pytest.mark.parametrize(
    ("cache_control", "kept"),
    [("max-age=60", 60), ("public, max-age=5", 30), ("max-age=86400", 300), ("no-store", 30)],
)
async def test_cache_control_is_honoured_within_bounds(
    verifier: WorkloadVerifier, key_clock: FrozenClock, cache_control: str, kept: int
) -> None:
    cluster = TestIssuer("cluster", Preset.KUBERNETES, cache_control=cache_control)
    async with serving_issuers(cluster):
        domain = cluster.domain(key_source=KeySource.JWKS_URI)
        await verifier.verify(domain, cluster.kubernetes_token(), NOW)
        key_clock.advance(kept - 1)
        await verifier.verify(domain, cluster.kubernetes_token(), NOW)
        assert cluster.requests["/openid/v1/jwks"] == 1
        key_clock.advance(1)
        await verifier.verify(domain, cluster.kubernetes_token(), NOW)
        assert cluster.requests["/openid/v1/jwks"] == 2


async def test_a_rotation_is_picked_up_at_once(
    verifier: WorkloadVerifier, key_clock: FrozenClock
) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()
        await verifier.verify(domain, github.github_token(), NOW)
        key_clock.advance(31)  # past the refresh interval, well within the max age
        github.rotate(retire=True)
        identity = await verifier.verify(domain, github.github_token(), NOW)
        assert identity.claims["repository"] == "octo-org/octo-repo"
        assert github.requests[JWKS] == 2


async def test_a_retired_key_stops_verifying_once_refetched(
    verifier: WorkloadVerifier, key_clock: FrozenClock
) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()
        old = github.signing
        await verifier.verify(domain, github.github_token(), NOW)
        github.rotate(retire=True)
        key_clock.advance(301)
        with pytest.raises(WorkloadRejected, match="workload_unknown_kid"):
            await verifier.verify(domain, github.mint({"iss": github.issuer}, key=old), NOW)


async def test_unknown_kids_refresh_at_most_once_per_interval(
    verifier: WorkloadVerifier, key_clock: FrozenClock
) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()
        await verifier.verify(domain, github.github_token(), NOW)
        claims = {"iss": github.issuer, "sub": "x", "aud": "a", "exp": NOW + 60}
        key_clock.advance(31)
        for _ in range(20):
            stranger = github.mint(claims, key=new_key())
            with pytest.raises(WorkloadRejected, match="workload_unknown_kid"):
                await verifier.verify(domain, stranger, NOW)
        assert github.requests[JWKS] == 2  # the first fetch, and one refresh
        key_clock.advance(29)
        with pytest.raises(WorkloadRejected, match="workload_unknown_kid"):
            await verifier.verify(domain, github.mint(claims, key=new_key()), NOW)
        assert github.requests[JWKS] == 2
        key_clock.advance(1)
        with pytest.raises(WorkloadRejected, match="workload_unknown_kid"):
            await verifier.verify(domain, github.mint(claims, key=new_key()), NOW)
        assert github.requests[JWKS] == 3
        # A known key still verifies all along, without a fetch.
        await verifier.verify(domain, github.github_token(), NOW)
        assert github.requests[JWKS] == 3


async def test_concurrent_misses_share_one_fetch(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()
        tokens = [github.github_token() for _ in range(10)]
        identities = await asyncio.gather(*(verifier.verify(domain, t, NOW) for t in tokens))
        assert len(identities) == 10
        assert github.requests == {DISCOVERY: 1, JWKS: 1}


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("stopped", "issuer_unreachable"),
        ("error", "issuer_http_status"),
        ("redirect", "issuer_http_status"),
        ("garbage", "issuer_document_not_json"),
        ("huge", "issuer_document_too_large"),
        ("hang", "issuer_timeout"),
    ],
)
async def test_an_issuer_down_fails_its_domain_only(
    verifier: WorkloadVerifier, failure: str, reason: str
) -> None:
    down = TestIssuer("down", Preset.GITHUB)
    up = TestIssuer("up", Preset.KUBERNETES)
    async with serving_issuers(down, up):
        domain, other = down.domain(), up.domain()
        if failure == "stopped":
            await down.stop()
        else:
            down.mode = failure
        with pytest.raises(IssuerUnavailable) as caught:
            await verifier.verify(domain, down.github_token(), NOW)
        assert caught.value.domain_id == domain.id
        assert caught.value.reason == reason
        identity = await verifier.verify(other, up.kubernetes_token(), NOW)
        assert identity.domain_id == other.id


async def test_a_slow_issuer_does_not_hold_up_another_domain(
    verifier: WorkloadVerifier,
) -> None:
    slow = TestIssuer("slow", Preset.GITHUB, mode="hang")
    up = TestIssuer("up", Preset.GITLAB)
    async with serving_issuers(slow, up):
        waiting = asyncio.create_task(verifier.verify(slow.domain(), slow.github_token(), NOW))
        await slow.asked.wait()
        identity = await verifier.verify(up.domain(), up.gitlab_token(), NOW)
        assert not waiting.done()
        assert identity.claims["project_path"] == "my-group/my-project"
        with pytest.raises(IssuerUnavailable, match="issuer_timeout"):
            await waiting


async def test_past_max_age_keys_are_not_used_when_the_fetch_fails(
    verifier: WorkloadVerifier, key_clock: FrozenClock
) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()
        await verifier.verify(domain, github.github_token(), NOW)
        github.mode = "error"
        key_clock.advance(299)
        await verifier.verify(domain, github.github_token(), NOW)  # still fresh
        key_clock.advance(2)
        with pytest.raises(IssuerUnavailable):
            await verifier.verify(domain, github.github_token(), NOW)


async def test_a_failed_issuer_is_asked_again_only_after_the_interval(
    verifier: WorkloadVerifier, key_clock: FrozenClock
) -> None:
    github = TestIssuer("github", Preset.GITHUB, mode="error")
    async with serving_issuers(github):
        domain = github.domain()
        for _ in range(5):
            with pytest.raises(IssuerUnavailable):
                await verifier.verify(domain, github.github_token(), NOW)
        assert github.requests[DISCOVERY] == 1
        github.mode = "up"
        key_clock.advance(29)
        with pytest.raises(IssuerUnavailable, match="issuer_recently_failed"):
            await verifier.verify(domain, github.github_token(), NOW)
        key_clock.advance(1)
        await verifier.verify(domain, github.github_token(), NOW)
        assert github.requests[DISCOVERY] == 2


async def test_the_discovery_document_must_name_the_domains_issuer(
    verifier: WorkloadVerifier,
) -> None:
    real, other = TestIssuer("real", Preset.GITHUB), TestIssuer("other", Preset.GITHUB)
    async with serving_issuers(real, other):
        # A domain for the real issuer whose discovery location is the other issuer's.
        domain = real.domain()
        misdirected = dataclasses.replace(domain, key_location=other.url + DISCOVERY)
        with pytest.raises(IssuerUnavailable, match="discovery_issuer_mismatch"):
            await verifier.verify(misdirected, real.github_token(), NOW)


async def test_a_changed_domain_drops_its_old_keys(
    verifier: WorkloadVerifier,
) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        await verifier.verify(github.domain(), github.github_token(), NOW)
        await verifier.verify(github.domain(version=2), github.github_token(), NOW)
        assert github.requests[JWKS] == 2
        verifier.forget(github.domain().id)
        await verifier.verify(github.domain(version=2), github.github_token(), NOW)
        assert github.requests[JWKS] == 3


async def test_the_fetch_timeout_bounds_the_whole_fetch(key_clock: FrozenClock) -> None:
    limits = KeyLimits(fetch_timeout=0.2, allow_insecure_loopback=True)
    verifier = WorkloadVerifier(limits=limits, clock=key_clock)
    slow = TestIssuer("slow", Preset.OIDC, mode="hang")
    try:
        async with serving_issuers(slow):
            with pytest.raises(IssuerUnavailable, match="issuer_timeout"):
                await verifier.verify(slow.domain(), slow.oidc_token(), NOW)
    finally:
        await verifier.aclose()


async def test_a_fetch_cancelled_with_its_request_leaves_the_next_one_to_fetch(
    verifier: WorkloadVerifier,
) -> None:
    github = TestIssuer("github", Preset.GITHUB, mode="hang")
    async with serving_issuers(github):
        domain = github.domain()
        first = asyncio.create_task(verifier.verify(domain, github.github_token(), NOW))
        await github.asked.wait()
        second = asyncio.create_task(verifier.verify(domain, github.github_token(), NOW))
        await asyncio.sleep(0)  # the second request waits on the first one's fetch
        github.mode = "up"
        first.cancel()
        identity = await second
        assert identity.claims["repository"] == "octo-org/octo-repo"
        with pytest.raises(asyncio.CancelledError):
            await first


async def test_an_issuer_without_usable_keys_is_unavailable(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        token = github.github_token()
        github.keys = []
        with pytest.raises(IssuerUnavailable, match="no_usable_keys"):
            await verifier.verify(github.domain(), token, NOW)


async def test_a_spiffe_bundles_refresh_hint_is_honoured(
    verifier: WorkloadVerifier, key_clock: FrozenClock
) -> None:
    spire = TestIssuer("spire", Preset.SPIFFE, refresh_hint=60)
    async with serving_issuers(spire):
        domain = spire.domain(key_source=KeySource.SPIFFE_BUNDLE)
        await verifier.verify(domain, spire.spiffe_svid(), NOW)
        key_clock.advance(59)
        await verifier.verify(domain, spire.spiffe_svid(), NOW)
        assert spire.requests["/bundle"] == 1
        key_clock.advance(1)
        await verifier.verify(domain, spire.spiffe_svid(), NOW)
        assert spire.requests["/bundle"] == 2


async def test_keys_are_never_fetched_from_a_plain_http_location(
    verifier: WorkloadVerifier,
) -> None:
    github = TestIssuer("github", Preset.GITHUB, jwks_uri="http://keys.example.com/jwks")
    async with serving_issuers(github):
        with pytest.raises(IssuerUnavailable, match="key_location_refused"):
            await verifier.verify(github.domain(), github.github_token(), NOW)
