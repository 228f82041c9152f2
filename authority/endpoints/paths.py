"""Every HTTP path the authority serves to OAuth clients, resource servers and auditors.

Routes and the discovery metadata (RFC 8414) both import these constants, so a path is
written once and the metadata cannot name an endpoint that lives somewhere else.
"""

from __future__ import annotations

from typing import Final

# --- RFC 8414 §3 / OpenID Connect Discovery §4: the metadata documents ---------------------
OAUTH_AUTHORIZATION_SERVER: Final = "/.well-known/oauth-authorization-server"
OPENID_CONFIGURATION: Final = "/.well-known/openid-configuration"

# --- RFC 7517: the public signing keys --------------------------------------------------
JWKS: Final = "/.well-known/jwks.json"

# --- OAuth endpoints --------------------------------------------------------------------
TOKEN: Final = "/oauth2/token"  # RFC 6749 §3.2, RFC 8693 token exchange, CIBA polling
INTROSPECTION: Final = "/oauth2/introspect"  # RFC 7662
REVOCATION: Final = "/oauth2/revoke"  # RFC 7009

# --- the authority's own APIs -------------------------------------------------------------
REVOCATION_FEED: Final = "/v1/revocations/feed"
LEDGER_ENTRIES: Final = "/v1/ledger/entries"
LEDGER_EXPORT: Final = "/v1/ledger/export"  # JSON Lines
LEDGER_CHECKPOINT: Final = "/v1/ledger/checkpoint"  # the latest signed tree head
LEDGER_CHECKPOINTS: Final = "/v1/ledger/checkpoints"
LEDGER_INCLUSION_PROOF: Final = "/v1/ledger/proofs/inclusion"
LEDGER_CONSISTENCY_PROOF: Final = "/v1/ledger/proofs/consistency"
LEDGER_KEYS: Final = "/v1/ledger/keys"  # every ledger key ever used (a JWK Set)

ALL: Final[frozenset[str]] = frozenset(
    {
        OAUTH_AUTHORIZATION_SERVER,
        OPENID_CONFIGURATION,
        JWKS,
        TOKEN,
        INTROSPECTION,
        REVOCATION,
        REVOCATION_FEED,
        LEDGER_ENTRIES,
        LEDGER_EXPORT,
        LEDGER_CHECKPOINT,
        LEDGER_CHECKPOINTS,
        LEDGER_INCLUSION_PROOF,
        LEDGER_CONSISTENCY_PROOF,
        LEDGER_KEYS,
    }
)
