"""The keyring: the authority's signing keys, their rotation, and the JWKS (RFC 7517).

Each purpose has keys of its own: ``token`` signs access tokens and delegations,
``ledger`` signs checkpoints, so a key of one purpose never verifies the other's output.
A key's ``kid`` is its RFC 7638 thumbprint, and its
algorithm (``settings.signing_alg`` when it was made: RS256, ES256 or EdDSA) is fixed for
its life and published as its JWK ``alg``, so a rotation may change the algorithm and
tokens of the old key still verify. Private keys are stored sealed
(``authority.tokens.sealing``), opened once when a key is first read, and kept in memory
only while the key is ``next`` or ``active``.

The life of a key: ``next`` -> ``active`` -> ``retired``.

* ``next``: made by ``rotate``; published in the JWKS, never signs. ``activated_at`` holds
  the time it is due: ``key_activation_delay`` after the rotation.
* ``active``: the one key of its purpose that signs.
* ``retired``: signs nothing and its sealed private key is erased. A token key stays
  published until ``publish_until`` (``retired_key_grace``, plus one refresh interval
  during which other instances may still sign with it), so everything it signed verifies
  until it has expired, then it leaves the JWKS. A ledger key stays published for good:
  checkpoints are verified for as long as the ledger exists.

Why the delay: a verifier can only check a token whose ``kid`` it has. A new key reaches
every instance within ``keyring_refresh_interval`` and every cached copy of the JWKS
within ``jwks_max_age`` (the JWKS ``Cache-Control``), and instance clocks differ by up to
``clock_skew``; the settings refuse an activation delay shorter than their sum, so no
token is signed with a key that some verifier could not yet have fetched.

SQL is the source of truth and every instance re-reads it every refresh interval. Two
writes need care when several instances run at once. Creating a purpose's first key and
scheduling a rotation check and insert under one lock (a PostgreSQL advisory transaction
lock; SQLite's ``BEGIN IMMEDIATE`` already serialises writers), so two instances starting
together create one key. Promotion is a conditional UPDATE (still ``next``, and due):
whichever instance gets there first promotes, the others' UPDATE matches no row.

``sign`` is on the path of every exchange: it reads prepared objects from memory, does no
I/O, and hands joserfc a ready key and algorithm registry (measured by
``bench/keyring_sign.py``).

What holds for one key whatever its state (its forms, how it is made and opened) is
``tokens.keys``; this module is the state machine over the keys of each purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from joserfc.util import json_b64encode, urlsafe_b64encode

from authority.clock import Clock
from authority.settings import Settings
from authority.tokens.keys import (
    PURPOSES,
    KeyInfo,
    KeyringError,
    Published,
    Purpose,
    Signer,
    Status,
    StoredKey,
    make_key,
    open_signer,
    published_key,
)
from authority.tokens.sealing import KeyDecryptionError, KeySealer

log = logging.getLogger("authority.keyring")

#: The actor recorded in the ledger for a purpose's first key, which nobody asked for.
SYSTEM_ACTOR = "authority"
_STATUS_ORDER = {"active": 0, "next": 1, "retired": 2}


class KeyringNotLoaded(KeyringError):
    """No active key of the purpose is in memory: ``load()`` has not completed."""


class RotationPending(KeyringError):
    """A rotation of this purpose is already scheduled and not yet active."""


class KeyStore(Protocol):
    """Where the signing keys live (the port ``authority.storage.keys``, chosen by ``app``).

    Every write serialises with the other instances' key writes and commits together
    with its ``key_rotated`` ledger entry, or not at all.
    """

    async def published(self, now: int) -> Sequence[StoredKey]:
        """Every key that is, or may still be, published at ``now``."""
        ...

    async def create_first(self, values: dict[str, Any], *, actor: str) -> bool:
        """Insert the first active key of its purpose; False if one exists already."""
        ...

    async def schedule(
        self, values: dict[str, Any], *, actor: str
    ) -> tuple[str | None, str | None]:
        """Insert a ``next`` key unless one is pending or none is active.

        Returns (the pending kid, the active kid) as they were; the key was inserted if
        and only if there was no pending key and an active one.
        """
        ...

    async def promote(
        self, purpose: Purpose, kid: str, now: int, *, retired_publish_until: int | None
    ) -> bool:
        """Make ``kid`` active if still ``next`` and due; retire (and erase) the old one."""
        ...

    async def all_keys(self) -> list[KeyInfo]:
        """Every key ever made, without private material."""
        ...


class Keyring:
    """Signing keys loaded once from the database; private keys decrypted in memory only."""

    def __init__(
        self, store: KeyStore, clock: Clock, settings: Settings, *, secret_key: bytes
    ) -> None:
        self._store = store
        self._clock = clock
        self._alg = settings.signing_alg
        self._rsa_bits = settings.signing_rsa_bits
        self._activation_delay = settings.key_activation_delay
        self._refresh_interval = settings.keyring_refresh_interval
        # Other instances sign with a retired key until their next refresh.
        self._retired_grace = settings.retired_key_grace + math.ceil(
            settings.keyring_refresh_interval
        )
        self._sealer = KeySealer(secret_key)
        self._signers: dict[Purpose, Signer] = {}
        #: Per purpose and typ: the signer, its encoded header and ``.``, its algorithm.
        self._prepared: dict[tuple[Purpose, str], tuple[Signer, bytes, Any]] = {}
        self._published: dict[str, Published] = {}
        self._opened: dict[str, Signer] = {}
        self._sync_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        active = {p: s.kid for p, s in self._signers.items()}
        return f"Keyring(alg={self._alg!r}, active={active!r})"

    # --- the hot path: memory only -------------------------------------------------------
    def sign(self, claims: dict[str, Any], *, typ: str, purpose: Purpose = "token") -> str:
        """Compact JWS with header {alg, kid, typ} using the active key of ``purpose``."""
        signer = self._signers.get(purpose)
        if signer is None:
            raise KeyringNotLoaded(f"no active {purpose} signing key is loaded")
        prepared = self._prepared.get((purpose, typ))
        if prepared is None or prepared[0] is not signer:
            prepared = self._prepared[(purpose, typ)] = _prepare(signer, typ)
        _, head, algorithm = prepared
        # What jws.serialize_compact does for this header, less what _prepare did once.
        signing_input = head + urlsafe_b64encode(orjson.dumps(claims))
        signature = urlsafe_b64encode(algorithm.sign(signing_input, signer.key))
        return (signing_input + b"." + signature).decode("ascii")

    def public_key(self, kid: str, purpose: Purpose = "token") -> Any | None:
        """The joserfc public key published under ``kid``, or None.

        None for a key of the other purpose, and for a retired key past ``publish_until``.
        """
        entry = self._published.get(kid)
        if entry is None or entry.purpose != purpose or not entry.visible(self._clock.now()):
            return None
        return entry.key

    def jwks(self, purpose: Purpose | None = None) -> dict[str, Any]:
        """Every published public key (next, active, retired within grace), all purposes.

        RFC 7517 §5: ``{"keys": [...]}``; each key has public members only, with ``kid``,
        ``alg`` and ``use: "sig"``. Pass ``purpose`` for the keys of one purpose.
        """
        now = self._clock.now()
        return {
            "keys": [
                dict(entry.public_jwk)
                for entry in self._published.values()
                if entry.visible(now) and (purpose is None or entry.purpose == purpose)
            ]
        }

    def active_kid(self, purpose: Purpose = "token") -> str:
        signer = self._signers.get(purpose)
        if signer is None:
            raise KeyringNotLoaded(f"no active {purpose} signing key is loaded")
        return signer.kid

    # --- loading and refreshing ---------------------------------------------------------
    async def load(self) -> None:
        """Load keys from SQL; create the first key of each purpose if none exists."""
        async with self._sync_lock:
            await self._sync(create_missing=True)

    async def refresh(self) -> None:
        """Reload from SQL (another process may have rotated); promote keys that are due."""
        async with self._sync_lock:
            await self._sync(create_missing=False)

    def start_refresh(self) -> None:
        """Refresh every ``keyring_refresh_interval`` seconds in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_forever(), name="keyring-refresh")

    async def stop_refresh(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except (KeyringError, KeyDecryptionError) as exc:
                log.error("keyring refresh failed: %s", exc)
            except Exception as exc:
                # The keys in memory stay valid: keep signing with them, retry next tick.
                log.warning("keyring refresh failed: %s", type(exc).__name__)

    async def _sync(self, *, create_missing: bool) -> None:
        rows = await self._read()
        if create_missing:
            have = {row.purpose for row in rows if row.status == "active"}
            missing = [p for p in PURPOSES if p not in have]
            for purpose in missing:
                await self._create_first(purpose)
            if missing:
                rows = await self._read()
        now = self._now()
        due = [r for r in rows if r.status == "next" and r.activated_at <= now]
        for row in due:
            await self._promote(row.purpose, row.kid, now)
        if due:
            rows = await self._read()
        self._install(rows)

    async def _read(self) -> Sequence[StoredKey]:
        """Every key that is, or may still be, published."""
        return await self._store.published(self._now())

    def _install(self, rows: Sequence[StoredKey]) -> None:
        """Build the new in-memory state from ``rows``, then swap it in at once."""
        ordered = sorted(
            rows,
            key=lambda r: (PURPOSES.index(r.purpose), _STATUS_ORDER[r.status], -r.created_at),
        )
        signers: dict[Purpose, Signer] = {}
        published: dict[str, Published] = {}
        opened: dict[str, Signer] = {}
        for row in ordered:
            published[row.kid] = self._published_entry(row)
            if row.status == "retired":
                continue
            signer = self._opened.get(row.kid) or open_signer(row, self._sealer)
            opened[row.kid] = signer
            if row.status == "active":
                if row.purpose in signers:
                    # Impossible through this module; the newest stays in charge.
                    log.error("several active %s signing keys in the database", row.purpose)
                    continue
                signers[row.purpose] = signer
        self._signers, self._published, self._opened = signers, published, opened

    def _published_entry(self, row: StoredKey) -> Published:
        previous = self._published.get(row.kid)
        if (
            previous is not None
            and previous.status == row.status
            and previous.publish_until == row.publish_until
        ):
            return previous
        return published_key(row)

    # --- writing ------------------------------------------------------------------------
    async def _new_key(
        self, purpose: Purpose, status: Status, activated_at: int, now: int
    ) -> dict[str, Any]:
        """A fresh key pair as the values of its ``signing_keys`` row (private key sealed).

        Made in a worker thread: an RSA key takes tens of milliseconds (bench/README.md),
        which must not stall the exchanges this instance is serving meanwhile.
        """
        return await asyncio.to_thread(
            make_key, self._alg, self._rsa_bits, self._sealer, purpose, status, activated_at, now
        )

    async def _create_first(self, purpose: Purpose) -> None:
        now = self._now()
        values = await self._new_key(purpose, "active", now, now)
        if not await self._store.create_first(values, actor=SYSTEM_ACTOR):
            return  # another instance created it first: adopt theirs
        log.info("created the first %s signing key %s", purpose, values["kid"])

    async def rotate(self, purpose: Purpose = "token", *, actor: str) -> KeyInfo:
        """Schedule a new key: published now, signing after ``key_activation_delay``.

        The active key keeps signing until then, and is retired when the new one takes
        over. The rotation is a ledger entry, written in the same transaction.
        """
        now = self._now()
        values = await self._new_key(purpose, "next", now + self._activation_delay, now)
        pending, active = await self._store.schedule(values, actor=actor)
        if pending is not None:
            raise RotationPending(
                f"a {purpose} key rotation is already scheduled: key {pending} is not active yet"
            )
        if active is None:
            raise KeyringError(f"there is no active {purpose} key to rotate; load first")
        log.info(
            "scheduled %s signing key %s to replace %s at %s",
            purpose,
            values["kid"],
            active,
            values["activated_at"],
        )
        await self.refresh()  # published by this instance at once
        return KeyInfo(
            kid=values["kid"],
            purpose=purpose,
            alg=values["alg"],
            status="next",
            created_at=now,
            activated_at=values["activated_at"],
            retired_at=None,
            publish_until=None,
        )

    async def _promote(self, purpose: Purpose, kid: str, now: int) -> bool:
        """Make ``kid`` the active key of ``purpose`` if it is still ``next`` and due.

        Several instances may try at once, and one may act on a stale read: the UPDATE
        matches only a row that is still ``next`` and due, so exactly one of them
        promotes and a key that has since moved on is never brought back.
        """
        retired_publish_until = None if purpose == "ledger" else now + self._retired_grace
        if not await self._store.promote(
            purpose, kid, now, retired_publish_until=retired_publish_until
        ):
            return False
        log.info("%s signing key %s is now active", purpose, kid)
        return True

    async def list_keys(self) -> list[KeyInfo]:
        """Every key ever made, for operators (no private material)."""
        return await self._store.all_keys()

    def _now(self) -> int:
        return int(self._clock.now())


def _prepare(signer: Signer, typ: str) -> tuple[Signer, bytes, Any]:
    """The checks ``jws.serialize_compact`` runs on each call, run once per key and typ:
    the header against the signer's registry (its one algorithm), the key against the
    algorithm; and the header's encoding, the same on every token."""
    header = {"alg": signer.alg, "kid": signer.kid, "typ": typ}
    signer.registry.check_header(header)
    algorithm = signer.registry.get_alg(signer.alg)
    algorithm.check_key(signer.key)
    return signer, json_b64encode(header) + b".", algorithm
