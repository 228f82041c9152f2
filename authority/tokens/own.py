"""A JWT this authority signed, once verified (``authority.tokens.validate``). A leaf,
so ``Services`` can hold the delegation credentials' verification cache typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class OwnToken:
    """A JWT this authority signed: signature, algorithm, typ and issuer verified.

    Its ``exp`` is NOT checked here: introspection answers an expired token as inactive
    and revocation ignores it, each in its own words.
    """

    typ: str
    claims: Mapping[str, Any]
    jti: str
    exp: int
