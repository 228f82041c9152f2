"""Sign, verify and key-generation cost of each access-token signing algorithm.

    .venv/bin/python -m bench.signing_algorithms

Signing is on the path of every exchange and verification on every call a resource
server checks, so the choice of ``signing_alg`` is a trade between these figures and
which validators accept the token (README, "Signing algorithms"). Key generation runs
once per rotation. Figures are microseconds, best of ``REPEAT`` runs, one core.
"""

from __future__ import annotations

import os
import timeit
from collections.abc import Callable
from typing import Any

import orjson
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authority.tokens.jose import registry
from bench.keyring_sign import typical_claims

ROUNDS = 500
REPEAT = 5
KEYGEN_ROUNDS = 5


def best_us(fn: Callable[[], Any], rounds: int = ROUNDS) -> float:
    fn()
    return min(timeit.repeat(fn, number=rounds, repeat=REPEAT)) / rounds * 1e6


def main() -> None:
    makers: dict[str, tuple[str, Callable[[], Any]]] = {
        "EdDSA": ("EdDSA", lambda: OKPKey.generate_key("Ed25519")),
        "ES256": ("ES256", lambda: ECKey.generate_key("P-256")),
        "RS256-2048": ("RS256", lambda: RSAKey.generate_key(2048)),
        "RS256-3072": ("RS256", lambda: RSAKey.generate_key(3072)),
    }
    payload = orjson.dumps(typical_claims())
    print(f"best of {REPEAT}; claims {len(payload)} B; {os.cpu_count()} cores on this machine")
    print(f"{'algorithm':11} {'sign us':>9} {'verify us':>10} {'keygen ms':>10} {'token B':>8}")
    for name, (alg, make) in makers.items():
        key = make()
        reg = registry([alg])
        header = {"alg": alg, "kid": "k", "typ": "at+jwt"}
        token = jws.serialize_compact(header, payload, key, registry=reg)
        sign = best_us(lambda: jws.serialize_compact(header, payload, key, registry=reg))  # noqa: B023
        verify = best_us(lambda: jws.deserialize_compact(token, key, registry=reg))  # noqa: B023
        keygen = best_us(make, KEYGEN_ROUNDS) / 1000
        print(f"{name:11} {sign:9.1f} {verify:10.1f} {keygen:10.1f} {len(token):8}")


if __name__ == "__main__":
    main()
