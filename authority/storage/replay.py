"""Single use of JWT ids (RFC 7523 §3 item 7, RFC 9449 §11.1): the values the ports spend.

RFC 7523 §3: "The authorization server MAY ensure that JWTs are not replayed by
maintaining the set of used "jti" values for the length of time for which the JWT would
be considered valid". Here it is a MUST for every JWT an agent or a resource server
authenticates with, and for every DPoP proof the token endpoint accepts. The set lives
in the SQL database, the source of truth, and is written in the same statement or
transaction as the decision it belongs to (by the port that records the decision:
``storage.exchange``, ``storage.clients``), so Redis need not remember anything for
replay protection: a restart or a failover of Redis cannot let an attestation or a proof
be used twice.

A use is keyed by the SHA-256 of its namespace and jti (never the jti itself, which is
the client's text) and kept until the JWT can no longer pass its expiry check; a sweeper
(``storage.sql.replay.Sweeper``) deletes rows past that.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

#: Most single uses one decision records (an attestation and a DPoP proof).
MOST = 2


@dataclass(frozen=True, slots=True)
class SingleUse:
    """One JWT id to spend: its digest and when it may be forgotten."""

    key: str
    expires_at: int


def single_use(namespace: str, scope: str, jti: str, *, expires_at: int) -> SingleUse:
    """The use of ``jti`` by ``scope`` (an agent id, a key thumbprint, a client id)."""
    material = f"{namespace}\x00{scope}\x00{jti}".encode()
    return SingleUse(hashlib.sha256(material).hexdigest(), expires_at)


class Sweeps(Protocol):
    """Forgets spent uses once their JWTs have expired, in the background."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...
