"""The heads of recorded calls at rest: sealed (``authority.sealing``) under a key of their own.

The database holds no recorded body in clear, so a copy of it (a backup, a replica, a
leaked dump) shows what went through the gateway to no one without the instance secret.
The associated data is the call id and the side, so a sealed head copied onto another
call, or swapped with the other side of its own call, does not open.
"""

from __future__ import annotations

from typing import Final, Literal

from authority.sealing import Sealer

#: HKDF "info" (RFC 5869 §3.2): this key seals recorded heads and nothing else.
LABEL: Final = b"authority/call-recordings/aes-256-gcm/v1"

Side = Literal["request", "response"]


class HeadSealer:
    __slots__ = ("_sealer",)

    def __init__(self, instance_secret: bytes) -> None:
        self._sealer = Sealer(instance_secret, label=LABEL)

    def __repr__(self) -> str:
        return "HeadSealer(...)"

    def seal(self, head: bytes, *, call_id: str, side: Side) -> bytes:
        return self._sealer.seal(head, aad=f"{call_id}/{side}")

    def open(self, sealed: bytes, *, call_id: str, side: Side) -> bytes | None:
        """The head; None for a value of another key or call, or altered."""
        return self._sealer.open(sealed, aad=f"{call_id}/{side}")
