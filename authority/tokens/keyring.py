"""The keyring: the authority's signing keys, their rotation, and the JWKS (RFC 7517).

INTERFACE ONLY: to be implemented. Callers (token exchange, delegations, ledger
checkpoints) depend on exactly these signatures.
"""

from __future__ import annotations

from typing import Any, Literal

Purpose = Literal["token", "ledger"]


class Keyring:
    """Signing keys loaded once from the database; private keys decrypted in memory only."""

    async def load(self) -> None:
        """Load keys from SQL; create the first key of each purpose if none exists."""
        raise NotImplementedError

    async def refresh(self) -> None:
        """Reload from SQL (another process may have rotated)."""
        raise NotImplementedError

    def sign(self, claims: dict[str, Any], *, typ: str, purpose: Purpose = "token") -> str:
        """Compact JWS with header {alg, kid, typ} using the active key of ``purpose``."""
        raise NotImplementedError

    def public_key(self, kid: str, purpose: Purpose = "token") -> Any | None:
        """The joserfc public key published under ``kid``, or None."""
        raise NotImplementedError

    def jwks(self) -> dict[str, Any]:
        """Every published public key (next, active, retired within grace), all purposes."""
        raise NotImplementedError
