"""What the authority and its clients (the agent SDK, the resource-server middleware) must
agree on: endpoint paths, grant and token types (RFC 6749, 7523, 8693, CIBA), the JWT
``typ`` values (RFC 8725 §3.11), the claims of an access token (RFC 9068, 9396, 9449),
the JWS algorithm allowlists (RFC 7518, 8037, 8725 §3.1) and the revocation feed's
Server-Sent Events names.

Both sides import these names from here and only from here, so a client cannot ask for
a path, a type or an algorithm the server does not serve or accept. The module is the
one part of the server the SDK shares, so it imports nothing but the standard library.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

# --- endpoint paths -----------------------------------------------------------------------
# RFC 8414 §3 / OpenID Connect Discovery §4: the metadata documents.
OAUTH_AUTHORIZATION_SERVER_PATH: Final = "/.well-known/oauth-authorization-server"
OPENID_CONFIGURATION_PATH: Final = "/.well-known/openid-configuration"
# RFC 7517: the public signing keys.
JWKS_PATH: Final = "/.well-known/jwks.json"
# OAuth endpoints.
TOKEN_PATH: Final = "/oauth2/token"  # RFC 6749 §3.2, RFC 8693 token exchange, CIBA polling
INTROSPECTION_PATH: Final = "/oauth2/introspect"  # RFC 7662
REVOCATION_PATH: Final = "/oauth2/revoke"  # RFC 7009
# The authority's own APIs.
REVOCATION_FEED_PATH: Final = "/v1/revocations/feed"
LEDGER_ENTRIES_PATH: Final = "/v1/ledger/entries"
LEDGER_EXPORT_PATH: Final = "/v1/ledger/export"  # JSON Lines
LEDGER_CHECKPOINT_PATH: Final = "/v1/ledger/checkpoint"  # the latest signed tree head
LEDGER_CHECKPOINTS_PATH: Final = "/v1/ledger/checkpoints"
LEDGER_INCLUSION_PROOF_PATH: Final = "/v1/ledger/proofs/inclusion"
LEDGER_CONSISTENCY_PROOF_PATH: Final = "/v1/ledger/proofs/consistency"
LEDGER_KEYS_PATH: Final = "/v1/ledger/keys"  # every ledger key ever used (a JWK Set)
#: Where a gateway (a registered resource server) submits the record of each call.
GATEWAY_CALLS_PATH: Final = "/v1/gateway/calls"
#: The auditor's call recordings: ``/{call_id}``, or listed by ``?jti=`` or ``?grant=``.
RECORDINGS_PATH: Final = "/v1/recordings"
#: The OpenAPI 3.1 document of the HTTP API (named in the metadata as authority_openapi_uri).
OPENAPI_PATH: Final = "/openapi.json"

# --- grant, token and assertion types -----------------------------------------------------
#: RFC 8693 §2.1.
GRANT_TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
#: OpenID Connect CIBA §10.1: an agent polls for a token whose call awaits human approval.
GRANT_CIBA: Final = "urn:openid:params:grant-type:ciba"
#: RFC 8693 §3: the attestation and the delegation are JWTs.
JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
#: RFC 8693 §3: what the exchange issues.
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
#: RFC 7523 §2.2: ``client_assertion_type`` of a JWT client assertion.
JWT_BEARER_ASSERTION: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# --- JWT ``typ`` values (RFC 8725 §3.11: one per kind, so one is never taken for another) --
#: RFC 9068 §2.1.
ACCESS_TOKEN_TYP: Final = "at+jwt"
#: RFC 9449 §4.2.
DPOP_TYP: Final = "dpop+jwt"
#: The owner's delegation credential.
DELEGATION_TYP: Final = "delegation+jwt"
#: A signed tree head of the ledger.
CHECKPOINT_TYP: Final = "checkpoint+jwt"
#: What an agent attestation (RFC 7523 §3) may carry: none, the generic JWT, or the
#: explicit client-authentication type; never another JWT kind.
ATTESTATION_TYPES: Final = frozenset({None, "JWT", "client-authentication+jwt"})

# --- access token claims (beyond the registered ones of RFC 7519 §4.1) ---------------------
#: RFC 9396 §2: the one authorization_details type; it names one tool call.
AUTHORIZATION_DETAILS_TYPE: Final = "tool_call"
CLAIM_AUTHORIZATION_DETAILS: Final = "authorization_details"  # RFC 9396 §9.1
CLAIM_ACTOR: Final = "act"  # RFC 8693 §4.1
CLAIM_CONFIRMATION: Final = "cnf"  # RFC 7800 §3.1; ``jkt`` member per RFC 9449 §6.1
CLAIM_DELEGATION_ID: Final = "delegation_id"
CLAIM_INTENT: Final = "intent"
#: Members of a ``tool_call`` detail beyond tool, resource and action: the call's
#: arguments as the agent asks (a JSON object), and their digest as the token carries it
#: (``authority.sdk.arguments``).
DETAIL_ARGUMENTS: Final = "arguments"
DETAIL_ARGUMENTS_DIGEST: Final = "arguments_digest"

# --- JWS algorithms -----------------------------------------------------------------------
#: What agents may sign attestations and DPoP proofs with (asymmetric only; RFC 8725 §3.2).
AGENT_ALGORITHMS: Final = ("EdDSA", "Ed25519", "ES256", "ES384", "ES512", "PS256", "PS384", "RS256")

#: RFC 9449 §5.1 / §7.1: what a DPoP proof may be signed with. The token endpoint, the
#: metadata (``dpop_signing_alg_values_supported``) and the resource-server middleware's
#: ``algs`` challenge all read this one tuple, so what is advertised is what is accepted.
DPOP_ALGORITHMS: Final = AGENT_ALGORITHMS

#: What the authority signs its own JWTs with (access tokens, delegations, checkpoints);
#: each key keeps the algorithm it was made for. RFC 9068 §2.1: "The JWT access token
#: MUST be signed. Authorization servers ... MUST support the RS256 signature algorithm".
#: RS256 comes first: it is the default, the one algorithm every JWT validator accepts.
TOKEN_SIGNING_ALGORITHMS: Final = ("RS256", "ES256", "EdDSA")

#: RFC 8725 §3.1: a key is used with the algorithms of its own type only.
_ALGORITHMS_FOR_KEY: Final[dict[tuple[str, str | None], frozenset[str]]] = {
    ("OKP", "Ed25519"): frozenset({"EdDSA", "Ed25519"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("EC", "P-521"): frozenset({"ES512"}),
    ("RSA", None): frozenset({"PS256", "PS384", "RS256"}),
}

#: JWK members that carry private or symmetric key material (RFC 7518 §6).
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


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


def access_token_hash(token: str) -> str:
    """``ath``: base64url(SHA-256(ASCII(access token))) (RFC 9449 §4.2)."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- the revocation feed (Server-Sent Events) ----------------------------------------------
#: The SSE ``event`` of one revocation.
FEED_EVENT_REVOCATION: Final = "revocation"
#: The message that ends the catch-up: everything before it has been sent.
FEED_EVENT_READY: Final = "ready"
