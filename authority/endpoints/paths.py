"""Every HTTP path the authority serves to OAuth clients, resource servers and auditors.

The paths themselves are in ``authority.protocol``, which the SDK shares; routes and the
discovery metadata (RFC 8414) both read them through these names, so a path is written
once and the metadata cannot name an endpoint that lives somewhere else.
"""

from __future__ import annotations

from typing import Final

from authority import protocol

OAUTH_AUTHORIZATION_SERVER: Final = protocol.OAUTH_AUTHORIZATION_SERVER_PATH
OPENID_CONFIGURATION: Final = protocol.OPENID_CONFIGURATION_PATH
JWKS: Final = protocol.JWKS_PATH
TOKEN: Final = protocol.TOKEN_PATH
INTROSPECTION: Final = protocol.INTROSPECTION_PATH
REVOCATION: Final = protocol.REVOCATION_PATH
REVOCATION_FEED: Final = protocol.REVOCATION_FEED_PATH
LEDGER_ENTRIES: Final = protocol.LEDGER_ENTRIES_PATH
LEDGER_EXPORT: Final = protocol.LEDGER_EXPORT_PATH
LEDGER_CHECKPOINT: Final = protocol.LEDGER_CHECKPOINT_PATH
LEDGER_CHECKPOINTS: Final = protocol.LEDGER_CHECKPOINTS_PATH
LEDGER_INCLUSION_PROOF: Final = protocol.LEDGER_INCLUSION_PROOF_PATH
LEDGER_CONSISTENCY_PROOF: Final = protocol.LEDGER_CONSISTENCY_PROOF_PATH
LEDGER_KEYS: Final = protocol.LEDGER_KEYS_PATH
GATEWAY_CALLS: Final = protocol.GATEWAY_CALLS_PATH
RECORDINGS: Final = protocol.RECORDINGS_PATH
OPENAPI: Final = protocol.OPENAPI_PATH

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
        GATEWAY_CALLS,
        RECORDINGS,
        OPENAPI,
    }
)
