"""JWS algorithm allowlists (RFC 7515, RFC 7518, RFC 8037; RFC 8725 §3.1) for the server.

The allowlists are part of the protocol the SDK shares (``authority.protocol``), and the
registries are built by ``authority.sdk.jws``, so that the authority signs with, and
resource servers verify under, the very same rules. This module names them for the
server's own modules.
"""

from __future__ import annotations

from authority.protocol import (
    AGENT_ALGORITHMS,
    DPOP_ALGORITHMS,
    PRIVATE_MEMBERS,
    TOKEN_SIGNING_ALGORITHMS,
    algorithms_for_key,
    token_algorithms_for_key,
)
from authority.sdk.jws import registry

__all__ = [
    "AGENT_ALGORITHMS",
    "DPOP_ALGORITHMS",
    "PRIVATE_MEMBERS",
    "TOKEN_SIGNING_ALGORITHMS",
    "algorithms_for_key",
    "registry",
    "token_algorithms_for_key",
]
