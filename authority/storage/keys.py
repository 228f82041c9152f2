"""The keys port: where the keyring (``authority.tokens.keyring``) keeps its signing keys.

The Protocol is ``tokens.keyring.KeyStore`` and its values are ``tokens.keys``'s, defined
there because ``authority.tokens`` imports no storage; this module names them beside the
other ports. The SQL implementation is ``storage.sql.keys``.
"""

from __future__ import annotations

from authority.tokens.keyring import KeyStore
from authority.tokens.keys import KeyInfo, Purpose, Status, StoredKey

__all__ = ["KeyInfo", "KeyStore", "Purpose", "Status", "StoredKey"]
