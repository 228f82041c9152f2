"""JWS algorithm registries (RFC 7515, RFC 7518, RFC 8037) with explicit allowlists (RFC 8725 §3.1).

Every JWS this package signs or verifies goes through a registry built here, so the
accepted algorithms are named in one place and never taken from the token itself.

``EdDSA`` (RFC 8037) is kept as the signing algorithm name although RFC 9864 deprecates it
in favour of ``Ed25519``: the verifiers resource servers actually run (PyJWT, authlib,
jose libraries in other languages) know ``EdDSA`` and not yet ``Ed25519``. The curve is
fixed by the key (OKP, crv Ed25519), which is what RFC 9864 is about; joserfc's
per-call deprecation warning is therefore silenced for it, and only for it.
"""

from __future__ import annotations

import copy
from collections.abc import Collection

from joserfc.jws import JWSRegistry

_EDDSA = copy.copy(JWSRegistry.algorithms["EdDSA"])
_EDDSA.security_warning = None


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _EDDSA}  # noqa: RUF012 (as in the base)


#: What agents may sign attestations and DPoP proofs with (asymmetric only; RFC 8725 §3.2).
AGENT_ALGORITHMS = ("EdDSA", "Ed25519", "ES256", "ES384", "ES512", "PS256", "PS384", "RS256")

#: RFC 9449 §5.1 / §7.1: what a DPoP proof may be signed with. The token endpoint, the
#: metadata (``dpop_signing_alg_values_supported``) and the resource-server middleware's
#: ``algs`` challenge all read this one tuple, so what is advertised is what is accepted.
DPOP_ALGORITHMS = AGENT_ALGORITHMS

#: What the authority signs its own JWTs with (access tokens, delegations, checkpoints);
#: each key keeps the algorithm it was made for. RFC 9068 §2.1: "The JWT access token
#: MUST be signed. Authorization servers ... MUST support the RS256 signature algorithm".
#: RS256 comes first: it is the default, the one algorithm every JWT validator accepts.
TOKEN_SIGNING_ALGORITHMS = ("RS256", "ES256", "EdDSA")


def registry(algorithms: Collection[str]) -> JWSRegistry:
    """A registry accepting exactly ``algorithms`` (never ``none``, never HMAC)."""
    unknown = [a for a in algorithms if a not in _Registry.algorithms or a.startswith("HS")]
    if unknown or "none" in algorithms:
        raise ValueError(f"unsupported JWS algorithms: {unknown or ['none']}")
    return _Registry(algorithms=list(algorithms))


#: RFC 8725 §3.1: a key is used with the algorithms of its own type only.
_ALGORITHMS_FOR_KEY: dict[tuple[str, str | None], frozenset[str]] = {
    ("OKP", "Ed25519"): frozenset({"EdDSA", "Ed25519"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("EC", "P-521"): frozenset({"ES512"}),
    ("RSA", None): frozenset({"PS256", "PS384", "RS256"}),
}

#: JWK members that carry private or symmetric key material (RFC 7518 §6).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def algorithms_for_key(kty: str, crv: str | None) -> frozenset[str]:
    """The agent-usable signing algorithms for a key of this type and curve."""
    return _ALGORITHMS_FOR_KEY.get((kty, crv), frozenset()) & frozenset(AGENT_ALGORITHMS)


def token_algorithms_for_key(kty: str, crv: str | None, alg: str | None) -> frozenset[str]:
    """What a token signed by the authority under this published key may name as ``alg``.

    RFC 8725 §3.1: "libraries MUST enable the caller to specify a supported set of
    algorithms and MUST NOT use any other algorithms". The set is the authority's own
    algorithms of this key type, narrowed to the key's registered ``alg``: an RSA key
    made for RS256 verifies RS256 only, never PS256 nor HS256 with its modulus as secret.
    """
    allowed = _ALGORITHMS_FOR_KEY.get((kty, crv), frozenset()) & frozenset(TOKEN_SIGNING_ALGORITHMS)
    return allowed & {alg} if alg is not None else allowed
