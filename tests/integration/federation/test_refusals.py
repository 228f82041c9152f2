"""What a workload token is refused for: each rule of verification, one test that fails
if the rule is removed."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable

import pytest

from authority.federation.model import KeySource, Preset
from authority.federation.verify import MAX_TOKEN_BYTES, WorkloadRejected, WorkloadVerifier
from tests.federation_issuers import (
    AUDIENCE,
    NOW,
    TestIssuer,
    hs256,
    new_key,
    serving_issuers,
    unsigned,
)


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def _segment(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _refused(verifier: WorkloadVerifier, domain: object, token: str, reason: str) -> None:
    with pytest.raises(WorkloadRejected) as caught:
        await verifier.verify(domain, token, NOW)  # type: ignore[arg-type]
    assert caught.value.reason == reason


async def test_a_token_of_one_domain_never_satisfies_another(verifier: WorkloadVerifier) -> None:
    """Two GitHub-shaped issuers, and two domains of one issuer with distinct audiences."""
    first, second = TestIssuer("ci-one", Preset.GITHUB), TestIssuer("ci-two", Preset.GITHUB)
    async with serving_issuers(first, second):
        one, two = first.domain(), second.domain()
        token = first.github_token()
        assert (await verifier.verify(one, token, NOW)).domain_id == one.id
        await _refused(verifier, two, token, "workload_wrong_issuer")
        # Same issuer, another domain of it pinned to another audience.
        other_audience = first.domain(id="td-ci-one-b", audience="https://other.example.test")
        await _refused(verifier, other_audience, token, "workload_wrong_audience")
        # A token claiming the second issuer but signed by the first one's key.
        forged = first.github_token(iss=second.issuer)
        await _refused(verifier, two, forged, "workload_unknown_kid")


async def test_time_claims(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(key_source=KeySource.STATIC_JWKS)
    # exp passed (beyond the 5 s skew), or missing.
    await _refused(verifier, domain, github.github_token(now=NOW - 400), "workload_expired")
    await _refused(verifier, domain, github.github_token(exp=NOW - 5), "workload_expired")
    assert await verifier.verify(domain, github.github_token(exp=NOW - 4), NOW)
    await _refused(verifier, domain, github.github_token(exp=None), "workload_bad_exp")
    await _refused(verifier, domain, github.github_token(exp="soon"), "workload_bad_exp")
    await _refused(verifier, domain, github.github_token(exp=True), "workload_bad_exp")
    # nbf and iat in the future beyond the skew.
    await _refused(verifier, domain, github.github_token(nbf=NOW + 6), "workload_not_yet_valid")
    await _refused(
        verifier, domain, github.github_token(iat=NOW + 6, nbf=None), "workload_issued_in_future"
    )
    assert await verifier.verify(domain, github.github_token(iat=NOW + 5, nbf=NOW + 5), NOW)


async def test_a_token_valid_for_longer_than_the_bound_is_refused(
    verifier: WorkloadVerifier,
) -> None:
    cluster = TestIssuer("cluster", Preset.KUBERNETES)
    domain = cluster.domain(key_source=KeySource.STATIC_JWKS)
    day = 24 * 3600
    assert verifier.max_lifetime == day
    assert await verifier.verify(domain, cluster.kubernetes_token(lifetime=day), NOW)
    year = cluster.kubernetes_token(lifetime=365 * day)
    await _refused(verifier, domain, year, "workload_lifetime_too_long")
    # Without iat the bound runs from now; a backdated iat does not shorten it.
    no_iat = cluster.kubernetes_token(lifetime=2 * day, iat=None)
    await _refused(verifier, domain, no_iat, "workload_lifetime_too_long")
    backdated = cluster.kubernetes_token(iat=NOW - 2 * day, lifetime=3 * day)
    await _refused(verifier, domain, backdated, "workload_lifetime_too_long")


async def test_issuer_and_audience_are_exact(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(key_source=KeySource.STATIC_JWKS)
    for iss in (github.issuer + "/", github.issuer.upper(), None, [github.issuer]):
        await _refused(verifier, domain, github.github_token(iss=iss), "workload_wrong_issuer")
    for aud in ("https://other.example.test", AUDIENCE + "/", None, [], ["x", 1]):
        await _refused(verifier, domain, github.github_token(aud=aud), "workload_wrong_audience")
    assert await verifier.verify(domain, github.github_token(aud=["x", AUDIENCE]), NOW)


async def test_unsigned_and_symmetric_tokens(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain = github.domain()
        claims = _claims(github.github_token())
        kid = github.signing.kid
        await _refused(verifier, domain, unsigned(claims, kid), "workload_alg_not_allowed")
        # HS256 keyed with the published public key's bytes (alg confusion).
        secret = json.dumps(github.jwks()).encode()
        await _refused(verifier, domain, hs256(claims, secret, kid), "workload_alg_not_allowed")
        # Refused before any key is fetched.
        assert sum(github.requests.values()) == 0


async def test_alg_must_fit_the_key(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(key_source=KeySource.STATIC_JWKS)
    token = github.github_token()
    _, payload, signature = token.split(".")
    # The RS256 key's alg pins it: the same signature under PS256 is refused.
    ps = _segment({"alg": "PS256", "typ": "JWT", "kid": github.signing.kid})
    await _refused(verifier, domain, f"{ps}.{payload}.{signature}", "workload_alg_not_allowed")
    es = _segment({"alg": "ES256", "typ": "JWT", "kid": github.signing.kid})
    await _refused(verifier, domain, f"{es}.{payload}.{signature}", "workload_alg_not_allowed")


async def test_unknown_kid_and_tampering(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(key_source=KeySource.STATIC_JWKS)
    stranger = new_key()
    await _refused(
        verifier,
        domain,
        github.mint(_claims(github.github_token()), key=stranger),
        "workload_unknown_kid",
    )
    # A stranger's key under the issuer's kid.
    impostor = new_key()
    impostor.kid = github.signing.kid
    await _refused(
        verifier,
        domain,
        github.mint(_claims(github.github_token()), key=impostor),
        "workload_bad_signature",
    )
    # A key carried by the token itself is never used (RFC 8725 §3.10).
    for member in ("jwk", "jku", "x5u"):
        carried: object = impostor.public_jwk() if member == "jwk" else "https://evil.test/k"
        forged = github.mint(
            _claims(github.github_token()), key=impostor, headers={member: carried}
        )
        await _refused(verifier, domain, forged, "workload_bad_signature")
    token = github.github_token()
    header, payload, signature = token.split(".")
    changed = _segment({**_claims(token), "repository": "octo-org/admin"})
    await _refused(verifier, domain, f"{header}.{changed}.{signature}", "workload_bad_signature")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    await _refused(verifier, domain, f"{header}.{payload}.{flipped}", "workload_bad_signature")


async def test_malformed_tokens(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(key_source=KeySource.STATIC_JWKS)
    token = github.github_token()
    header, payload, signature = token.split(".")
    for bad in (
        "",
        "a.b",
        token + ".x",
        f"{header}=.{payload}.{signature}",
        f"{header}.{payload}+.{signature}",
        "e30.e30.",
        "W10.e30.c2ln",
    ):
        with pytest.raises(WorkloadRejected):
            await verifier.verify(domain, bad, NOW)
    big = github.github_token(padding="x" * MAX_TOKEN_BYTES)
    await _refused(verifier, domain, big, "workload_too_large")
    crit = github.mint(_claims(token), headers={"crit": ["exp"]})
    await _refused(verifier, domain, crit, "workload_unsupported_crit")


async def test_typ_of_another_kind_of_jwt(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(key_source=KeySource.STATIC_JWKS)
    claims = _claims(github.github_token())
    for typ in ("dpop+jwt", "secevent+jwt", "kb+jwt"):
        await _refused(
            verifier, domain, github.mint(claims, headers={"typ": typ}), "workload_wrong_typ"
        )
    for accepted in ("JWT", "jwt", "application/jwt", "JOSE", None):
        token = github.mint(claims, headers={"typ": accepted})
        assert await verifier.verify(domain, token, NOW)


async def test_a_disabled_domain_verifies_nothing(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(key_source=KeySource.STATIC_JWKS)
    disabled = dataclasses.replace(domain, status="disabled")
    await _refused(verifier, disabled, github.github_token(), "workload_domain_disabled")


async def test_jti_when_present_is_a_short_string(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(key_source=KeySource.STATIC_JWKS)
    await _refused(verifier, domain, github.github_token(jti=12), "workload_bad_jti")
    await _refused(verifier, domain, github.github_token(jti="j" * 257), "workload_bad_jti")
    # It becomes the identity's token_id, shown and logged: printable, like every kept string.
    for unprintable in ("a\nb", "\ud800", "tab\there", "\u202e"):
        token = github.github_token(jti=unprintable)
        await _refused(verifier, domain, token, "workload_bad_jti")
    identity = await verifier.verify(domain, github.github_token(jti=None), NOW)
    assert identity.token_id is None


async def test_a_token_without_kid_is_tried_against_the_keys_of_its_alg(
    verifier: WorkloadVerifier,
) -> None:
    okta = TestIssuer("okta", Preset.OIDC)
    okta.rotate("ES256")
    domain = okta.domain(key_source=KeySource.STATIC_JWKS)
    claims = _claims(okta.oidc_token())
    rsa_key, ec_key = okta.keys
    for key in (rsa_key, ec_key):
        token = okta.mint(claims, key=key, headers={"kid": None})
        assert (await verifier.verify(domain, token, NOW)).subject == claims["sub"]
    await _refused(
        verifier,
        domain,
        okta.mint(claims, key=new_key(), headers={"kid": None}),
        "workload_bad_signature",
    )


async def test_static_keys_changed_in_place_are_read_again(verifier: WorkloadVerifier) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    domain = github.domain(key_source=KeySource.STATIC_JWKS)
    assert await verifier.verify(domain, github.github_token(), NOW)
    old = github.signing
    github.rotate(retire=True)
    # The same domain id and version, with other keys: the old key no longer verifies.
    changed = dataclasses.replace(domain, static_jwks=github.jwks())
    assert await verifier.verify(changed, github.github_token(), NOW)
    await _refused(
        verifier,
        changed,
        github.mint(_claims(github.github_token()), key=old),
        "workload_unknown_kid",
    )
    # An equal copy of the keys is the same entry.
    copy = dataclasses.replace(domain, static_jwks=github.jwks())
    assert await verifier.verify(copy, github.github_token(), NOW)


@pytest.mark.parametrize("preset", [Preset.OIDC, Preset.GITHUB, Preset.GITLAB])
@pytest.mark.parametrize("sub", [True, 1, 0])
async def test_the_subject_is_a_string(
    verifier: WorkloadVerifier, preset: Preset, sub: object
) -> None:
    # RFC 7519 §4.1.2: "The "sub" value is a case-sensitive string"; true is not "true".
    issuer = TestIssuer("platform", preset)
    domain = issuer.domain(key_source=KeySource.STATIC_JWKS)
    mint: dict[Preset, Callable[[], str]] = {
        Preset.OIDC: issuer.oidc_token,
        Preset.GITHUB: issuer.github_token,
        Preset.GITLAB: issuer.gitlab_token,
    }
    minted = mint[preset]()
    token = issuer.mint({**_claims(minted), "sub": sub})
    await _refused(verifier, domain, token, "workload_bad_claim_sub")
