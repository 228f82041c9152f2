"""Handshake-era MCP sessions (``Mcp-Session-Id``, up to 2025-11-25) bound to the
delegation that opened them.

The upstream's session id never reaches the agent as it is: the gateway hands out
``<id>.<tag>``, the tag an HMAC-SHA-256 of the id under the gateway's session key and the
delegation of the token that opened the session. A request that presents a session id
must carry a token of the same delegation, or the session is unknown to it (404, as the
transport answers for a session that does not exist): one agent cannot ride another's
session, nor a revoked delegation's successor its predecessor's. 2026-07-28 has no
sessions, so nothing of this applies to it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

HEADER = "mcp-session-id"
_TAG_BYTES = 16


class SessionBinding:
    def __init__(self, key: bytes | None = None) -> None:
        # Without a configured key, one per process: sessions then do not move between
        # gateway instances (neither do they upstream, unless the upstream shares them).
        self._key = key or secrets.token_bytes(32)

    def _tag(self, session: str, delegation_id: str) -> str:
        mac = hmac.new(self._key, f"{delegation_id}\0{session}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:_TAG_BYTES]).rstrip(b"=").decode()

    def wrap(self, session: str, delegation_id: str) -> str:
        return f"{session}.{self._tag(session, delegation_id)}"

    def unwrap(self, presented: str, delegation_id: str) -> str | None:
        """The upstream's session id, or None when this delegation did not open it."""
        session, dot, tag = presented.rpartition(".")
        if not dot or not session:
            return None
        expected = self._tag(session, delegation_id)
        return session if hmac.compare_digest(tag.encode(), expected.encode()) else None
