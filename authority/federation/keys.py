"""Each trust domain's verification keys: fetched from its issuer, cached, bounded.

Where the keys come from is the domain's ``key_source``:
- ``discovery``: the OIDC discovery document (``key_location``, default the issuer's
  ``/.well-known/openid-configuration``), whose ``issuer`` must be the domain's exactly
  (OpenID Connect Discovery 1.0 §4.3), then its ``jwks_uri``;
- ``jwks_uri``: a JWKS at ``key_location``;
- ``static_jwks``: the JWKS the domain holds;
- ``spiffe_bundle``: a SPIFFE trust bundle (the domain's own, or fetched from
  ``key_location``), of which only the keys with ``use`` = ``jwt-svid`` verify JWT-SVIDs
  (SPIFFE Trust Domain and Bundle §4.2.2; the ``x509-svid`` keys are for X.509 only).

A fetched key set is kept for the JWKS response's ``Cache-Control: max-age`` (or the
bundle's ``spiffe_refresh_hint``), bounded below by ``refresh_min_interval`` and above
by ``max_age``. A token naming a kid not in a fresh set fetches again (a rotation), at
most once per ``refresh_min_interval`` per domain, however many such tokens arrive. A
fetch is bounded by ``fetch_timeout`` and ``MAX_DOCUMENT_BYTES``; a failed one is not
retried for ``refresh_min_interval`` either.

Fail closed, with no stale grace: once a key set is older than its max age and a fetch
fails, the domain's tokens are refused with ``IssuerUnavailable`` (503 for that domain);
last known keys are never used past their age. Every domain has its own cache entry and
lock, so one issuer being down or slow never holds up another's tokens.

Only public members are read from a JWK (``n``/``e``, ``crv``/``x``/``y``, ``kid``,
``alg``): a private key published by mistake is used as its public half, and a key of
another use (``enc``), of ``key_ops`` without ``verify`` (or ``sign``), of another type
or size is skipped, never an error for the others.
"""

from __future__ import annotations

import asyncio
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.util import urlsafe_b64decode

from authority.clock import Clock
from authority.federation.addresses import AddressRefused, PublicOnlyTransport, check_key_location
from authority.federation.errors import IssuerUnavailable, WorkloadRejected
from authority.federation.model import KeySource, TrustDomain
from authority.sdk.jws import PublicKey

#: The largest discovery document or JWKS read, bytes.
MAX_DOCUMENT_BYTES = 256 * 1024
#: Most keys read from one JWKS.
MAX_KEYS = 64
#: Most keys tried for a token without kid (those whose algorithms include its alg).
MAX_KEYS_WITHOUT_KID = 5
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_PUBLIC_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}
#: RFC 7518 §3.1 and RFC 8037 §3.1, asymmetric only: what each key type may verify.
_ALGORITHMS: dict[tuple[str, str | None], frozenset[str]] = {
    ("RSA", None): frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("OKP", "Ed25519"): frozenset({"EdDSA"}),
}
#: Every algorithm a workload token may be signed with (never ``none``, never HMAC).
WORKLOAD_ALGORITHMS: frozenset[str] = frozenset().union(*_ALGORITHMS.values())


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """How long key sets are kept and how hard an issuer is asked (from the settings)."""

    max_age: float = 300.0
    refresh_min_interval: float = 10.0
    fetch_timeout: float = 3.0
    #: Plain http and loopback addresses allowed (development and tests only).
    allow_insecure_loopback: bool = False


@dataclass(frozen=True, slots=True)
class IssuerKey:
    kid: str | None
    key: PublicKey
    algorithms: frozenset[str]


class _Unusable(Exception):
    """A fetch that gave no key set: its reason is a stable code for the log."""


def _import(member: Mapping[str, Any], *, spiffe: bool) -> IssuerKey | None:
    use = member.get("use")
    if spiffe and use != "jwt-svid":
        return None
    if not spiffe and use not in (None, "sig"):
        return None
    operations = member.get("key_ops")
    if operations is not None and (
        not isinstance(operations, list) or not {"verify", "sign"} & set(map(str, operations))
    ):
        # RFC 7517 §4.3: a key for other operations (encrypt, wrapKey) is not for
        # verifying; "sign" names a private key published by mistake, whose public half is.
        return None
    kty, kid, alg = member.get("kty"), member.get("kid"), member.get("alg")
    if not isinstance(kty, str) or kty not in _PUBLIC_MEMBERS:
        return None
    if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= 256):
        return None
    public = {name: member[name] for name in _PUBLIC_MEMBERS[kty] if name in member}
    try:
        key: PublicKey
        if kty == "RSA":
            # Measured before import (which warns of a small key): too small is weak, too
            # large makes every check slow.
            modulus = public.get("n")
            if not isinstance(modulus, str):
                return None
            bits = int.from_bytes(urlsafe_b64decode(modulus.encode("ascii"))).bit_length()
            if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
                return None
            key = RSAKey.import_key({"kty": kty, **public})
        elif kty == "EC":
            key = ECKey.import_key({"kty": kty, **public})
        else:
            key = OKPKey.import_key({"kty": kty, **public})
    except (JoseError, ValueError, TypeError, KeyError, binascii.Error):
        # joserfc raises KeyError for a curve it does not know (P-192, brainpool, p-256).
        return None
    crv = public.get("crv") if kty != "RSA" else None
    algorithms = _ALGORITHMS.get((kty, crv if isinstance(crv, str) else None), frozenset())
    if alg is not None:
        # RFC 8725 §3.1: a key's own alg narrows what it verifies.
        algorithms = algorithms & {alg} if isinstance(alg, str) else frozenset()
    return IssuerKey(kid, key, algorithms) if algorithms else None


def parse_jwks(document: object, *, spiffe: bool = False) -> tuple[IssuerKey, ...]:
    """The usable verification keys of a JWKS (or SPIFFE bundle); others are skipped."""
    members = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(members, list):
        return ()
    keys = (_import(m, spiffe=spiffe) for m in members[:MAX_KEYS] if isinstance(m, Mapping))
    return tuple(k for k in keys if k is not None)


def select(keys: tuple[IssuerKey, ...], kid: str | None, alg: str) -> tuple[IssuerKey, ...]:
    """The keys that may have signed a token with this kid and alg."""
    if kid is not None:
        return tuple(k for k in keys if k.kid == kid)
    fitting = tuple(k for k in keys if alg in k.algorithms)
    if len(fitting) > MAX_KEYS_WITHOUT_KID:
        # RFC 7515 §4.1.4 makes kid optional; trying every key of a large set is not.
        raise WorkloadRejected("workload_kid_required")
    return fitting


def _max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    directives = [d.strip().lower() for d in cache_control.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age" and value.strip().isdigit():
            return float(value.strip())
    return None


@dataclass(slots=True)
class _Entry:
    """One domain's cache: its key set, until when it is fresh, the last fetch."""

    source: tuple[object, ...]
    static_text: str = ""  # static keys as canonical JSON ("" for fetched ones)
    static: Mapping[str, object] | None = None  # the object they were last read from
    keys: tuple[IssuerKey, ...] = ()
    fresh_until: float = float("-inf")
    last_attempt: float | None = None
    last_failed: bool = False
    generation: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class IssuerKeys:
    """The key caches of every trust domain, one entry each."""

    def __init__(
        self, limits: KeyLimits, clock: Clock, http: httpx.AsyncClient | None = None
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(limits.fetch_timeout),
            follow_redirects=False,
            transport=PublicOnlyTransport(allow_loopback=limits.allow_insecure_loopback),
        )
        self._entries: dict[str, _Entry] = {}
        #: Fetches made, by domain: for the metrics and the tests of the rate bound.
        self.fetches: dict[str, int] = {}

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    def forget(self, domain_id: str) -> None:
        """Drop a domain's keys (it was changed or removed)."""
        self._entries.pop(domain_id, None)

    def _entry(self, domain: TrustDomain) -> _Entry:
        """The domain's cache entry, new when the domain changed how its keys are had
        (its source, location, issuer, version, or static keys' content)."""
        source = (domain.key_source, domain.key_location, domain.issuer, domain.version)
        spiffe = domain.key_source is KeySource.SPIFFE_BUNDLE
        static = domain.key_source is KeySource.STATIC_JWKS or (
            spiffe and domain.key_location is None
        )
        entry = self._entries.get(domain.id)
        if entry is not None and entry.source == source and not static:
            return entry
        if entry is not None and entry.source == source and entry.static is domain.static_jwks:
            return entry  # the very keys parsed before: nothing to compare
        text = json.dumps(domain.static_jwks, sort_keys=True, default=str) if static else ""
        if entry is None or entry.source != source or entry.static_text != text:
            entry = self._entries[domain.id] = _Entry(source, static_text=text)
            if static:
                entry.keys = parse_jwks(domain.static_jwks or {}, spiffe=spiffe)
                entry.fresh_until = float("inf")
        entry.static = domain.static_jwks
        return entry

    async def keys_for(
        self, domain: TrustDomain, kid: str | None, alg: str
    ) -> tuple[IssuerKey, ...]:
        """The keys of ``domain`` that may have signed a token with this kid and alg.

        ``WorkloadRejected("workload_unknown_kid")`` when there is none even after the
        refresh a rotation may need; ``IssuerUnavailable`` when the keys cannot be had.
        """
        entry = self._entry(domain)
        now = self._clock.now()
        recent = entry.last_attempt is not None and (
            now - entry.last_attempt < self.limits.refresh_min_interval
        )
        if now < entry.fresh_until:
            found = select(entry.keys, kid, alg)
            if found:
                return found
            if recent or entry.fresh_until == float("inf"):
                # Static keys never change; a fetched set was just read.
                raise WorkloadRejected("workload_unknown_kid")
        elif recent and entry.last_failed:
            raise IssuerUnavailable(domain.id, "issuer_recently_failed")
        await self._refresh(domain, entry)
        found = select(entry.keys, kid, alg)
        if not found:
            raise WorkloadRejected("workload_unknown_kid")
        return found

    async def _refresh(self, domain: TrustDomain, entry: _Entry) -> None:
        """Fetch the domain's keys once, however many tokens wait for them."""
        seen = entry.generation
        async with entry.lock:
            if entry.generation != seen:
                # Fetched while this request waited: its result is this request's too.
                if entry.last_failed or self._clock.now() >= entry.fresh_until:
                    raise IssuerUnavailable(domain.id, "issuer_recently_failed")
                return
            previous, entry.last_attempt = entry.last_attempt, self._clock.now()
            self.fetches[domain.id] = self.fetches.get(domain.id, 0) + 1
            # Counted once it is over, so that whoever waited sees its result; a fetch
            # cancelled with its request is not counted, and the next waiter fetches.
            try:
                keys, max_age = await self._attempt(domain)
            except asyncio.CancelledError:
                # Not an attempt: the issuer said nothing, so an earlier failure does
                # not hold the domain for another interval.
                entry.last_attempt = previous
                raise
            except Exception as exc:
                # Any failure, foreseen or not, is a failed fetch: the domain is
                # unavailable and the issuer is not asked again before the interval.
                entry.last_failed = True
                entry.generation += 1
                if isinstance(exc, IssuerUnavailable):
                    raise
                raise IssuerUnavailable(domain.id, "issuer_fetch_failed") from None
            entry.generation += 1
            limits = self.limits
            age = limits.max_age if max_age is None else max_age
            age = max(min(age, limits.max_age), min(limits.refresh_min_interval, limits.max_age))
            entry.keys, entry.last_failed = keys, False
            entry.fresh_until = entry.last_attempt + age

    async def _attempt(self, domain: TrustDomain) -> tuple[tuple[IssuerKey, ...], float | None]:
        """One fetch within the timeout; every way it can fail is ``IssuerUnavailable``."""
        try:
            async with asyncio.timeout(self.limits.fetch_timeout):
                return await self._fetch(domain)
        except TimeoutError:
            raise IssuerUnavailable(domain.id, "issuer_timeout") from None
        except httpx.HTTPError:
            raise IssuerUnavailable(domain.id, "issuer_unreachable") from None
        except (AddressRefused, httpx.InvalidURL, UnicodeError):
            # A URL the checks passed that the client still cannot (or may not) use.
            raise IssuerUnavailable(domain.id, "key_location_refused") from None
        except _Unusable as exc:
            raise IssuerUnavailable(domain.id, str(exc)) from None

    async def _fetch(self, domain: TrustDomain) -> tuple[tuple[IssuerKey, ...], float | None]:
        spiffe = domain.key_source is KeySource.SPIFFE_BUNDLE
        if domain.key_source is KeySource.DISCOVERY:
            url = domain.key_location or (
                domain.issuer.rstrip("/") + "/.well-known/openid-configuration"
            )
            discovery, _ = await self._get_json(url)
            # OpenID Connect Discovery 1.0 §4.3: "The issuer value returned MUST be
            # identical to the Issuer URL that was used as the prefix to
            # /.well-known/openid-configuration to retrieve the configuration information."
            if discovery.get("issuer") != domain.issuer:
                raise _Unusable("discovery_issuer_mismatch")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise _Unusable("discovery_without_jwks_uri")
            url = jwks_uri
        elif domain.key_location is not None:
            url = domain.key_location
        else:
            raise _Unusable("no_key_location")
        document, max_age = await self._get_json(url)
        if spiffe:
            hint = document.get("spiffe_refresh_hint")
            if isinstance(hint, int) and not isinstance(hint, bool) and hint >= 0:
                max_age = float(hint) if max_age is None else min(max_age, float(hint))
        keys = parse_jwks(document, spiffe=spiffe)
        if not keys:
            raise _Unusable("no_usable_keys")
        return keys, max_age

    async def _get_json(self, url: str) -> tuple[Mapping[str, Any], float | None]:
        try:
            check_key_location(url, allow_loopback=self.limits.allow_insecure_loopback)
        except ValueError:
            raise _Unusable("key_location_refused") from None
        # Uncompressed only: a compressed document is decoded a whole chunk at a time,
        # so a small gzip answer could grow far past the size bound before it is seen.
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        stream = self._http.stream("GET", url, headers=headers, follow_redirects=False)
        async with stream as response:
            if response.status_code != 200:
                raise _Unusable("issuer_http_status")
            if response.headers.get("content-encoding", "identity").strip().lower() != ("identity"):
                raise _Unusable("issuer_document_compressed")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise _Unusable("issuer_document_too_large")
            max_age = _max_age(response.headers.get("cache-control"))
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise _Unusable("issuer_document_not_json") from None
        if not isinstance(document, dict):
            raise _Unusable("issuer_document_not_json")
        return document, max_age
