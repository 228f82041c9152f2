"""Microseconds per ``Keyring.sign`` for a typical access token's claims (about 600 bytes).

    .venv/bin/python -m bench.keyring_sign

Prints, per signing algorithm, the time of ``sign`` next to the time of the bare
signature by ``cryptography`` over the same signing input, so the cost of the JOSE
layer around the signature can be read off.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import timeit
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

from authority.app import build_services, stop
from authority.settings import Settings

ROUNDS = 2000
REPEAT = 7


def typical_claims() -> dict[str, Any]:
    """The claims of an RFC 9068 access token authorising one tool call."""
    now = 1_800_000_000
    return {
        "iss": "https://authority.example.com",
        "sub": "own_" + secrets.token_hex(16),
        "aud": "https://api.github.example.com",
        "client_id": "agt_" + secrets.token_hex(16),
        "act": {"sub": "agt_" + secrets.token_hex(16)},
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "nbf": now,
        "exp": now + 5,
        "delegation_id": "dlg_" + secrets.token_hex(16),
        "intent": "triage bugs in acme/web",
        "authorization_details": [
            {
                "type": "tool_call",
                "tool": "github.issues.create",
                "resource": "https://api.github.example.com/repos/acme/web",
                "action": "create",
            }
        ],
        "cnf": {"jkt": secrets.token_urlsafe(32)},
    }


def best_us(fn: Any) -> float:
    fn()
    return min(timeit.repeat(fn, number=ROUNDS, repeat=REPEAT)) / ROUNDS * 1e6


async def measure(alg: str, data_dir: Path) -> None:
    settings = Settings(
        data_dir=data_dir,
        secret_key=secrets.token_urlsafe(32),
        signing_alg=alg,
        auto_migrate=True,
    )
    from authority.storage.database import migrate

    await migrate(settings.sqlalchemy_url)
    services = build_services(settings)
    try:
        keyring = services.keyring
        await keyring.load()
        claims = typical_claims()
        size = len(orjson.dumps(claims))
        sign_us = best_us(lambda: keyring.sign(claims, typ="at+jwt"))

        raw = keyring._signers["token"].key.private_key
        message = keyring.sign(claims, typ="at+jwt").rsplit(".", 1)[0].encode()
        if isinstance(raw, ec.EllipticCurvePrivateKey):
            bare_us = best_us(lambda: raw.sign(message, ec.ECDSA(SHA256())))
        elif isinstance(raw, rsa.RSAPrivateKey):
            bare_us = best_us(lambda: raw.sign(message, padding.PKCS1v15(), SHA256()))
        else:
            bare_us = best_us(lambda: raw.sign(message))  # type: ignore[union-attr]
        print(
            f"{alg:6} claims {size} B: sign {sign_us:6.1f} us   "
            f"bare signature {bare_us:6.1f} us   JOSE layer {sign_us - bare_us:5.1f} us"
        )
    finally:
        await stop(services)


async def main() -> None:
    print(f"best of {REPEAT} x {ROUNDS} signatures, one core ({os.cpu_count()} available)")
    for alg in ("RS256", "ES256", "EdDSA"):
        with tempfile.TemporaryDirectory() as tmp:
            await measure(alg, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
