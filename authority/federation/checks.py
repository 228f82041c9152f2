"""A trust domain as an administrator describes it, checked before it is kept.

``check_trust_domain`` refuses, in a fixed sentence that never repeats the input
(``Refused``), a domain verification could not use as meant: an issuer that is not an
https URL (or, for SPIFFE, a trust domain ID), a key source without what it reads, a
key location keys may not be fetched from, static keys none of which can verify, a
claim mapping onto a preset's own names. Whatever passes here can still fail at
verification time (an issuer down), which is ``IssuerUnavailable`` then, not a refusal.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from authority.federation.addresses import check_key_location
from authority.federation.keys import parse_jwks
from authority.federation.model import KeySource, Preset, TrustDomain
from authority.federation.presets import check_claim_mapping, spiffe_trust_domain
from authority.management.field_errors import Refused

MAX_ISSUER_LENGTH = 512
MAX_AUDIENCE_LENGTH = 512
STATUSES = frozenset({"active", "disabled"})


def _url_issuer(issuer: str) -> bool:
    """RFC 8414 §2 / OpenID Connect Discovery §2: https, no query, no fragment (http on
    loopback only, for development and tests)."""
    try:
        check_key_location(issuer)
    except ValueError:
        return False
    return not urlsplit(issuer).query


def check_trust_domain(domain: TrustDomain) -> None:
    """Refuse a domain that verification could not use as its administrator meant."""
    issuer = domain.issuer
    if not issuer or len(issuer) > MAX_ISSUER_LENGTH or not issuer.isprintable():
        raise Refused(f"The issuer must be 1 to {MAX_ISSUER_LENGTH} printable characters.")
    spiffe_id = spiffe_trust_domain(issuer) if domain.preset is Preset.SPIFFE else None
    if spiffe_id is None and not _url_issuer(issuer):
        raise Refused(
            "The issuer must be an https URL of a public host without query or fragment "
            "(http only on loopback), or for SPIFFE a trust domain ID such as "
            "spiffe://example.org."
        )
    audience = domain.audience
    if not audience or len(audience) > MAX_AUDIENCE_LENGTH or not audience.isprintable():
        raise Refused(f"The audience must be 1 to {MAX_AUDIENCE_LENGTH} printable characters.")
    if domain.status not in STATUSES:
        raise Refused("The status must be active or disabled.")
    _check_keys(domain, spiffe_id is not None)
    check_claim_mapping(domain.preset, domain.claim_mapping)


def _check_keys(domain: TrustDomain, spiffe_id: bool) -> None:
    source, location, static = domain.key_source, domain.key_location, domain.static_jwks
    if source is KeySource.SPIFFE_BUNDLE and domain.preset is not Preset.SPIFFE:
        raise Refused("A SPIFFE trust bundle holds keys for the spiffe preset only.")
    if source is KeySource.DISCOVERY and location is None and spiffe_id:
        raise Refused("Discovery needs an https issuer or a key_location.")
    if source in (KeySource.JWKS_URI, KeySource.DISCOVERY) and static is not None:
        raise Refused("Static keys are for the static_jwks or spiffe_bundle key source.")
    if source is KeySource.JWKS_URI and location is None:
        raise Refused("The jwks_uri key source needs a key_location.")
    if source is KeySource.STATIC_JWKS and (static is None or location is not None):
        raise Refused("The static_jwks key source needs static keys and no key_location.")
    if source is KeySource.SPIFFE_BUNDLE and (static is None) == (location is None):
        raise Refused("A SPIFFE trust bundle is either static keys or a key_location.")
    if location is not None:
        try:
            check_key_location(location)
        except ValueError:
            raise Refused(
                "The key_location must be an https URL of a public host, without "
                "credentials or fragment (http only on loopback)."
            ) from None
    if static is not None and not parse_jwks(static, spiffe=source is KeySource.SPIFFE_BUNDLE):
        raise Refused(
            "The static keys hold no key that can verify a workload token (asymmetric, "
            "public, for signing"
            + (", use jwt-svid" if source is KeySource.SPIFFE_BUNDLE else "")
            + ")."
        )
