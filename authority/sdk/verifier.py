"""Local verification of the authority's access tokens (RFC 9068 §4) by a resource server.

Keys come from the ``jwks_uri`` of the issuer's metadata (RFC 8414), cached, and fetched
again when a token names a kid the cache lacks (at most once per ``min_refresh``
seconds, so garbage kids cannot make us hammer the authority). DPoP-bound tokens
(``cnf.jkt``) need a valid proof for this very request (RFC 9449 §7).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from authority import protocol
from authority.protocol import ACCESS_TOKEN_TYP, TOKEN_SIGNING_ALGORITHMS, token_algorithms_for_key
from authority.sdk.dpop import verify_proof
from authority.sdk.jws import (
    JWTRejected,
    PreparedKey,
    UnverifiedJWT,
    audience_includes,
    peek,
    require_int,
    require_str,
)

AT_TYP = ACCESS_TOKEN_TYP
#: The authority signs with one of these; a token naming another is refused outright.
TOKEN_ALGORITHMS = frozenset(TOKEN_SIGNING_ALGORITHMS)


class TokenInvalid(Exception):
    """The token is not acceptable; ``reason`` is for logs, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(TokenInvalid):
    """The issuer's keys cannot be read now: the token can be neither trusted nor refused
    as forged (an enforcement point may answer "try again" rather than "invalid")."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An access token whose signature, issuer, audience, lifetime and binding all hold."""

    raw: str
    claims: Mapping[str, Any]
    jti: str
    owner_id: str
    agent_id: str
    delegation_id: str
    issued_at: int
    expires_at: int
    tool: str
    resource: str
    action: str
    dpop_jkt: str | None


def _prepare(key: Any) -> PreparedKey:
    """A published key with what a token signed by it may name as ``alg``.

    RFC 8725 §3.1: the algorithm comes from our allowlist and the key, never from the
    token alone: only the alg the key is published for, of the key's own type (so no
    HS256 keyed with an RSA modulus, no "none", no RS256 on an EC key).
    """
    crv = key.as_dict().get("crv") if key.key_type in ("OKP", "EC") else None
    allowed = token_algorithms_for_key(key.key_type, crv if isinstance(crv, str) else None, key.alg)
    return PreparedKey(key, allowed)


class JWKSCache:
    """The issuer's published keys, refreshed on an unknown kid, each prepared once for
    verification (``PreparedKey``) when the key set is read."""

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        min_refresh: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self._http = http
        self._keys: dict[str, PreparedKey] = {}
        self._jwks_uri: str | None = None
        self._last_fetch = float("-inf")
        self._fetch_failed = False
        self._min_refresh = min_refresh
        self._clock = clock
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        if self._jwks_uri is None:
            metadata = (
                await self._http.get(self.issuer + protocol.OAUTH_AUTHORIZATION_SERVER_PATH)
            ).json()
            if metadata.get("issuer") != self.issuer:
                raise TokenInvalid("issuer metadata mismatch")
            self._jwks_uri = str(metadata["jwks_uri"])
        response = await self._http.get(self._jwks_uri)
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
        self._keys = {str(k.kid): _prepare(k) for k in keys.keys if k.kid}
        self._last_fetch = self._clock()
        self._fetch_failed = False

    async def key(self, kid: str) -> PreparedKey:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is None and self._clock() - self._last_fetch >= self._min_refresh:
                try:
                    await self._fetch()
                except (httpx.HTTPError, ValueError, KeyError, TypeError, JoseError):
                    # The keys cannot be read now: this token cannot be verified (401),
                    # and the next unknown kid tries again after min_refresh.
                    self._last_fetch = self._clock()
                    self._fetch_failed = True
                    raise KeysUnavailable("jwks unavailable") from None
                key = self._keys.get(kid)
        if key is None:
            if self._fetch_failed:
                # The last attempt to read the keys failed: unknown, not known-bad.
                raise KeysUnavailable("jwks unavailable")
            raise TokenInvalid("unknown kid")
        return key


class TokenVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks: JWKSCache,
        *,
        leeway: int = 5,
        dpop_max_age: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.jwks = jwks
        self.leeway = leeway
        self.dpop_max_age = dpop_max_age
        self.clock = clock
        self._seen_proofs: dict[str, float] = {}

    async def verify(
        self,
        token: str,
        *,
        scheme: str,
        method: str,
        url: str,
        dpop_proof: str | None,
    ) -> VerifiedToken:
        try:
            unverified = peek(token)
            return await self._verify(unverified, scheme, method, url, dpop_proof)
        except JWTRejected as exc:
            raise TokenInvalid(exc.reason) from None

    async def _verify(
        self,
        unverified: UnverifiedJWT,
        scheme: str,
        method: str,
        url: str,
        dpop_proof: str | None,
    ) -> VerifiedToken:
        header = unverified.header
        # RFC 9068 §4: "Resource servers MUST verify that the typ header value is at+jwt".
        if header.get("typ") != AT_TYP:
            raise TokenInvalid("wrong typ")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenInvalid("no kid")
        # The key's algorithms are the allowlist's, narrowed by the key (``_prepare``).
        key = await self.jwks.key(kid)
        claims = key.verify(unverified)
        now = int(self.clock())
        # RFC 9068 §4: iss must match, aud must contain this resource server, exp not past.
        if claims.get("iss") != self.issuer:
            raise TokenInvalid("wrong issuer")
        if not audience_includes(claims, (self.audience,)):
            raise TokenInvalid("wrong audience")
        exp = require_int(claims, "exp")
        iat = require_int(claims, "iat")
        if exp <= now - self.leeway:
            raise TokenInvalid("expired")
        if iat > now + self.leeway:
            raise TokenInvalid("issued in the future")
        details = claims.get(protocol.CLAIM_AUTHORIZATION_DETAILS)
        if not isinstance(details, list) or len(details) != 1 or not isinstance(details[0], dict):
            raise TokenInvalid("no single tool call")
        call = details[0]
        cnf = claims.get(protocol.CLAIM_CONFIRMATION)
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        self._check_binding(claims, jkt, scheme, method, url, dpop_proof, now, unverified.raw)
        act = claims.get(protocol.CLAIM_ACTOR)
        return VerifiedToken(
            raw=unverified.raw,
            claims=claims,
            jti=require_str(claims, "jti"),
            owner_id=require_str(claims, "sub"),
            agent_id=require_str(act, "sub") if isinstance(act, dict) else "",
            delegation_id=require_str(claims, protocol.CLAIM_DELEGATION_ID),
            issued_at=iat,
            expires_at=exp,
            tool=require_str(call, "tool"),
            resource=require_str(call, "resource"),
            action=require_str(call, "action"),
            dpop_jkt=jkt if isinstance(jkt, str) else None,
        )

    def _check_binding(
        self,
        claims: Mapping[str, Any],
        jkt: object,
        scheme: str,
        method: str,
        url: str,
        dpop_proof: str | None,
        now: int,
        token: str,
    ) -> None:
        if jkt is None:
            # RFC 9449 §7.1: a bearer token presented with the DPoP scheme is refused too.
            if scheme != "bearer":
                raise TokenInvalid("bearer token under the DPoP scheme")
            return
        # RFC 9449 §7.1: a DPoP-bound token must come with the DPoP scheme and a proof.
        if scheme != "dpop" or dpop_proof is None:
            raise TokenInvalid("bound token without a DPoP proof")
        proof = verify_proof(
            dpop_proof,
            method=method,
            url=url,
            now=now,
            skew=self.leeway,
            max_age=self.dpop_max_age,
            access_token=token,
        )
        if proof.jkt != jkt:
            raise TokenInvalid("proof key is not the bound key")
        self._remember_proof(proof.jti, now)

    def _remember_proof(self, jti: str, now: int) -> None:
        """A proof's jti is accepted once while the proof could be fresh (RFC 9449 §11.1).

        Entries are kept in the order they were seen, so forgetting the ones past the
        horizon takes the oldest first and stops at the first that may still be replayed
        (one past a clock set back is kept longer, never dropped early).
        """
        seen = self._seen_proofs
        horizon = now - self.dpop_max_age - self.leeway
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= horizon:
                break
            del seen[oldest]
        if jti in seen:
            raise TokenInvalid("replayed DPoP proof")
        seen[jti] = now
