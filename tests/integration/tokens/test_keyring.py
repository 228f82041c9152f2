"""The keyring: keys sealed at rest, signing from memory, rotation, and several instances."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import jwt as pyjwt
import orjson
import pytest
from joserfc import jwk
from joserfc.util import urlsafe_b64decode
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.engine import Row

from authority.app import build_services, start, stop
from authority.clock import FrozenClock
from authority.context import Services
from authority.settings import Settings
from authority.storage.schema import ledger_entries, signing_keys
from authority.storage.sql import ledger as sql_ledger
from authority.tokens.jose import TOKEN_SIGNING_ALGORITHMS
from authority.tokens.keyring import Keyring, KeyringNotLoaded, RotationPending
from authority.tokens.keys import KeyringError, StoredKey
from authority.tokens.sealing import KeyDecryptionError, KeySealer
from tests.conftest import TEST_SECRET

CLAIMS = {"iss": "http://127.0.0.1:8400", "sub": "own_1", "aud": "https://rs.example"}


def claims() -> dict[str, Any]:
    return {**CLAIMS, "exp": int(time.time()) + 3600}


def verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Verify with PyJWT and nothing but the published JWKS, as a resource server would."""
    header = pyjwt.get_unverified_header(token)
    keys = {k.key_id: k for k in pyjwt.PyJWKSet.from_dict(jwks).keys}
    key = keys[header["kid"]]
    result: dict[str, Any] = pyjwt.decode(
        token, key, algorithms=[header["alg"]], audience="https://rs.example"
    )
    return result


def kids(jwks: dict[str, Any]) -> set[str]:
    return {key["kid"] for key in jwks["keys"]}


async def key_rows(services: Services) -> Sequence[Row[Any]]:
    async with services.engine.connect() as conn:
        return (await conn.execute(select(signing_keys))).all()


async def statuses(services: Services) -> dict[str, str]:
    return {row.kid: f"{row.purpose}:{row.status}" for row in await key_rows(services)}


def count(values: dict[str, str], status: str) -> int:
    return sum(1 for value in values.values() if value == status)


@contextlib.asynccontextmanager
async def instance(
    settings: Settings, clock: FrozenClock, *, started: bool = True
) -> AsyncIterator[Services]:
    """Another authority instance over the same database."""
    svc = build_services(settings, clock=clock)
    try:
        if started:
            await start(svc)
        yield svc
    finally:
        await stop(svc)


async def promote(services: Services, clock: FrozenClock, delay: int) -> None:
    clock.advance(delay)
    await services.keyring.refresh()


async def eventually(condition: Callable[[], bool]) -> bool:
    """Wait up to 10 s for a background refresh to make ``condition`` true (real time)."""
    for _ in range(500):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


# --- keys at rest ---------------------------------------------------------------------------
async def test_private_keys_are_sealed_in_the_database(services: Services) -> None:
    rows = await key_rows(services)
    assert {row.purpose for row in rows} == {"token", "ledger"}
    for row in rows:
        key = services.keyring._opened[row.kid].key
        der = key.as_der(private=True)
        scalar = urlsafe_b64decode(str(key.as_dict(private=True)["d"]).encode())
        assert der not in row.private_key
        assert scalar not in row.private_key
        assert b"PRIVATE KEY" not in row.private_key
        assert "d" not in orjson.loads(row.public_jwk)
        # What is stored is the PKCS#8 key sealed under the instance secret, bound to its kid.
        assert KeySealer(TEST_SECRET.encode()).open(row.private_key, kid=row.kid) == der


async def test_another_secret_fails_to_load_with_a_clear_error(
    services: Services, settings_factory: Any, clock: FrozenClock
) -> None:
    other = settings_factory(secret_key="a-different-instance-secret-of-32-chars-or-more")
    svc = build_services(other, clock=clock)
    try:
        with pytest.raises(KeyDecryptionError, match="instance secret"):
            await svc.keyring.load()
    finally:
        await stop(svc)


async def test_a_sealed_key_moved_to_another_row_does_not_open(
    services: Services, settings: Settings, clock: FrozenClock
) -> None:
    token = services.keyring.active_kid("token")
    ledger = services.keyring.active_kid("ledger")
    rows = {row.kid: row.private_key for row in await key_rows(services)}
    async with services.engine.begin() as conn:
        for kid, other in ((token, ledger), (ledger, token)):
            await conn.execute(
                update(signing_keys)
                .where(signing_keys.c.kid == kid)
                .values(private_key=rows[other])
            )
    async with instance(settings, clock, started=False) as svc:
        with pytest.raises(KeyDecryptionError):
            await svc.keyring.load()


async def test_a_public_key_that_is_not_the_kids_is_refused(
    services: Services, settings: Settings, clock: FrozenClock
) -> None:
    impostor = jwk.OKPKey.generate_key("Ed25519").as_dict(private=False)
    kid = services.keyring.active_kid("token")
    forged = orjson.dumps({**impostor, "kid": kid, "alg": "EdDSA", "use": "sig"}).decode()
    async with services.engine.begin() as conn:
        await conn.execute(
            update(signing_keys).where(signing_keys.c.kid == kid).values(public_jwk=forged)
        )
    async with instance(settings, clock, started=False) as svc:
        with pytest.raises(KeyringError, match="not its own"):
            await svc.keyring.load()


async def test_private_keys_are_opened_once(
    services: Services, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_open = KeySealer.open

    def counting_open(self: KeySealer, sealed: bytes, *, kid: str) -> bytes:
        opened.append(kid)
        return real_open(self, sealed, kid=kid)

    monkeypatch.setattr(KeySealer, "open", counting_open)
    keyring = services.keyring
    for _ in range(3):
        await keyring.refresh()
    assert opened == []
    info = await keyring.rotate("token", actor="test")
    assert opened == [info.kid]
    await promote(services, clock, services.settings.key_activation_delay)
    await keyring.refresh()
    assert opened == [info.kid]


async def test_secrets_never_appear_in_repr_or_logs(
    settings: Settings, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with instance(settings, clock) as svc:
        await svc.keyring.rotate("token", actor="test")
        await promote(svc, clock, settings.key_activation_delay)
        secrets: list[str] = []
        for signer in svc.keyring._opened.values():
            secrets.append(str(signer.key.as_dict(private=True)["d"]))
            secrets.append(signer.key.as_der(private=True).hex())
            assert str(signer.key.as_dict(private=True)["d"]) not in repr(signer)
        shown = repr(svc.keyring) + caplog.text
        assert secrets
        assert not [s for s in secrets if s in shown]


# --- signing and verifying --------------------------------------------------------------
@pytest.mark.parametrize("alg", TOKEN_SIGNING_ALGORITHMS)
async def test_a_signed_token_verifies_with_the_jwks_alone(
    alg: str, settings_factory: Any, clock: FrozenClock
) -> None:
    async with instance(settings_factory(signing_alg=alg), clock) as svc:
        token = svc.keyring.sign(claims(), typ="at+jwt")
        header = pyjwt.get_unverified_header(token)
        assert header == {"alg": alg, "kid": svc.keyring.active_kid("token"), "typ": "at+jwt"}
        assert verify(token, svc.keyring.jwks())["sub"] == "own_1"


#: RFC 7638 §3.2: the required public members of each key type, which the thumbprint covers.
REQUIRED_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}


@pytest.mark.parametrize("alg", TOKEN_SIGNING_ALGORITHMS)
async def test_the_jwks_holds_public_members_and_thumbprint_kids(
    settings_factory: Any, clock: FrozenClock, alg: str
) -> None:
    async with instance(settings_factory(signing_alg=alg), clock) as svc:
        published = svc.keyring.jwks()["keys"]
    assert len(published) == 2
    for key in published:
        required = REQUIRED_MEMBERS[key["kty"]]
        assert set(key) == {*required, "kid", "alg", "use"}
        assert key["use"] == "sig"
        assert key["alg"] == alg
        assert key["kid"] == jwk.thumbprint({name: key[name] for name in required})


async def test_the_purposes_have_keys_of_their_own(services: Services) -> None:
    keyring = services.keyring
    token, ledger = keyring.active_kid("token"), keyring.active_kid("ledger")
    assert token != ledger
    assert keyring.public_key(token, "token") is not None
    assert keyring.public_key(ledger, "token") is None
    assert keyring.public_key(token, "ledger") is None
    assert kids(keyring.jwks("ledger")) == {ledger}
    checkpoint = keyring.sign({"tree_size": 1}, typ="checkpoint+jwt", purpose="ledger")
    assert pyjwt.get_unverified_header(checkpoint)["kid"] == ledger


async def test_signing_does_no_io(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    class NoDatabase:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError("sign() touched the database")

    monkeypatch.setattr(services.keyring, "_store", NoDatabase())
    token = services.keyring.sign(claims(), typ="at+jwt")
    assert verify(token, services.keyring.jwks())


async def test_nothing_signs_before_load(settings: Settings, clock: FrozenClock) -> None:
    async with instance(settings, clock, started=False) as svc:
        with pytest.raises(KeyringNotLoaded):
            svc.keyring.sign(claims(), typ="at+jwt")


# --- rotation -------------------------------------------------------------------------------
async def test_a_next_key_is_published_at_once_but_does_not_sign(services: Services) -> None:
    keyring = services.keyring
    before = keyring.active_kid("token")
    info = await keyring.rotate("token", actor="test")
    assert info.status == "next"
    assert info.activated_at == services.now() + services.settings.key_activation_delay
    assert info.kid in kids(keyring.jwks())
    assert keyring.public_key(info.kid, "token") is not None
    token = keyring.sign(claims(), typ="at+jwt")
    assert pyjwt.get_unverified_header(token)["kid"] == before


async def test_the_next_key_signs_only_after_the_activation_delay(
    services: Services, clock: FrozenClock
) -> None:
    keyring = services.keyring
    delay = services.settings.key_activation_delay
    old = keyring.active_kid("token")
    old_token = keyring.sign(claims(), typ="at+jwt")
    info = await keyring.rotate("token", actor="test")

    await promote(services, clock, delay - 1)
    assert keyring.active_kid("token") == old
    await promote(services, clock, 1)
    assert keyring.active_kid("token") == info.kid
    new_token = keyring.sign(claims(), typ="at+jwt")
    assert pyjwt.get_unverified_header(new_token)["kid"] == info.kid
    # The retired key still verifies what it signed.
    jwks = keyring.jwks()
    assert {old, info.kid} <= kids(jwks)
    assert verify(old_token, jwks) and verify(new_token, jwks)
    assert (await statuses(services))[old] == "token:retired"


async def test_a_retired_key_is_published_until_publish_until_then_dropped(
    services: Services, clock: FrozenClock
) -> None:
    keyring = services.keyring
    settings = services.settings
    old = keyring.active_kid("token")
    await keyring.rotate("token", actor="test")
    await promote(services, clock, settings.key_activation_delay)
    (row,) = [r for r in await key_rows(services) if r.kid == old]
    # Everything the key signed may live retired_key_grace longer; other instances may
    # sign with it for one more refresh interval.
    assert row.publish_until == row.retired_at + settings.retired_key_grace + 2
    clock.advance(row.publish_until - clock.now() - 1)
    assert old in kids(keyring.jwks())
    assert keyring.public_key(old, "token") is not None
    clock.advance(1)
    assert old not in kids(keyring.jwks())
    assert keyring.public_key(old, "token") is None
    await keyring.refresh()
    assert old not in kids(keyring.jwks())


async def test_a_retired_key_loses_its_private_half(services: Services, clock: FrozenClock) -> None:
    old = services.keyring.active_kid("token")
    await services.keyring.rotate("token", actor="test")
    await promote(services, clock, services.settings.key_activation_delay)
    (row,) = [r for r in await key_rows(services) if r.kid == old]
    assert row.status == "retired"
    assert row.private_key == b""
    assert old not in services.keyring._opened


async def test_retired_ledger_keys_stay_published(services: Services, clock: FrozenClock) -> None:
    keyring = services.keyring
    old = keyring.active_kid("ledger")
    await keyring.rotate("ledger", actor="test")
    await promote(services, clock, services.settings.key_activation_delay)
    (row,) = [r for r in await key_rows(services) if r.kid == old]
    assert (row.status, row.publish_until) == ("retired", None)
    clock.advance(10 * services.settings.retired_key_grace)
    await keyring.refresh()
    assert keyring.public_key(old, "ledger") is not None


async def test_a_second_rotation_waits_for_the_first(services: Services) -> None:
    await services.keyring.rotate("token", actor="test")
    with pytest.raises(RotationPending):
        await services.keyring.rotate("token", actor="test")
    await services.keyring.rotate("ledger", actor="test")  # the other purpose is separate
    assert count(await statuses(services), "token:next") == 1


async def test_each_key_is_recorded_in_the_ledger(services: Services) -> None:
    first = services.keyring.active_kid("token")
    info = await services.keyring.rotate("token", actor="cli:ops")
    async with services.engine.connect() as conn:
        query = select(ledger_entries.c.body).where(ledger_entries.c.kind == "key_rotated")
        bodies = [orjson.loads(body) for body in (await conn.scalars(query)).all()]
    by_kid = {body["kid"]: body for body in bodies}
    assert by_kid[first]["actor"] == "authority"
    assert "previous_kid" not in by_kid[first]
    assert by_kid[info.kid] == {
        **by_kid[info.kid],
        "kind": "key_rotated",
        "version": 1,
        "purpose": "token",
        "alg": services.settings.signing_alg,
        "previous_kid": first,
        "actor": "cli:ops",
    }
    assert len(bodies) == 3  # the first token key, the first ledger key, the rotation


async def test_a_rotation_that_cannot_be_recorded_does_not_happen(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_append(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("ledger unavailable")

    before = await statuses(services)
    monkeypatch.setattr(sql_ledger, "append", failing_append)
    with pytest.raises(RuntimeError):
        await services.keyring.rotate("token", actor="test")
    assert await statuses(services) == before
    assert len(services.keyring.jwks()["keys"]) == 2


# --- several instances --------------------------------------------------------------------
async def test_two_instances_agree_after_a_refresh(
    services: Services, settings: Settings, clock: FrozenClock
) -> None:
    async with instance(settings, clock) as other:
        info = await services.keyring.rotate("token", actor="test")
        await other.keyring.refresh()
        assert info.kid in kids(other.keyring.jwks())
        assert other.keyring.active_kid("token") != info.kid

        clock.advance(settings.key_activation_delay)
        await other.keyring.refresh()  # this one promotes
        await services.keyring.refresh()
        for svc in (services, other):
            assert svc.keyring.active_kid("token") == info.kid
        assert services.keyring.jwks() == other.keyring.jwks()
        token = other.keyring.sign(claims(), typ="at+jwt")
        assert verify(token, services.keyring.jwks())


async def test_instances_refresh_by_themselves(settings_factory: Any, clock: FrozenClock) -> None:
    settings = settings_factory(keyring_refresh_interval=0.05)
    async with instance(settings, clock) as one, instance(settings, clock) as two:
        info = await one.keyring.rotate("token", actor="test")
        assert await eventually(lambda: info.kid in kids(two.keyring.jwks()))
        clock.advance(settings.key_activation_delay)
        assert await eventually(
            lambda: {one.keyring.active_kid(), two.keyring.active_kid()} == {info.kid}
        )
    assert one.keyring._task is None and two.keyring._task is None


async def test_a_failed_refresh_keeps_the_keys_and_retries(
    settings_factory: Any, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory(keyring_refresh_interval=0.02)
    async with instance(settings, clock) as one, instance(settings, clock) as two:
        real_read = Keyring._read
        failures = 0

        async def flaky_read(self: Keyring) -> Sequence[StoredKey]:
            nonlocal failures
            if self is two.keyring and failures < 3:
                failures += 1
                raise OSError("database unreachable")
            return await real_read(self)

        monkeypatch.setattr(Keyring, "_read", flaky_read)
        info = await one.keyring.rotate("token", actor="test")
        assert two.keyring.sign(claims(), typ="at+jwt")
        assert await eventually(lambda: info.kid in kids(two.keyring.jwks()))
        assert failures == 3


async def test_instances_promoting_at_once_promote_once(
    services: Services, settings: Settings, clock: FrozenClock
) -> None:
    async with instance(settings, clock) as two, instance(settings, clock) as three:
        old = services.keyring.active_kid("token")
        info = await services.keyring.rotate("token", actor="test")
        for svc in (two, three):
            await svc.keyring.refresh()
        clock.advance(settings.key_activation_delay)
        await asyncio.gather(*(svc.keyring.refresh() for svc in (services, two, three)))
        found = await statuses(services)
        assert found[info.kid] == "token:active"
        assert found[old] == "token:retired"
        assert count(found, "token:active") == 1
        assert {svc.keyring.active_kid() for svc in (services, two, three)} == {info.kid}


async def test_a_stale_promotion_changes_nothing(services: Services, clock: FrozenClock) -> None:
    keyring = services.keyring
    delay = services.settings.key_activation_delay
    first = await keyring.rotate("token", actor="test")
    await promote(services, clock, delay)
    second = await keyring.rotate("token", actor="test")
    await promote(services, clock, delay)
    before = await statuses(services)
    assert before[first.kid] == "token:retired"
    # An instance that read ``first`` as next before all this now tries to promote it.
    assert await keyring._promote("token", first.kid, services.now()) is False
    # Nor is a next key promoted before it is due.
    third = await keyring.rotate("token", actor="test")
    assert await keyring._promote("token", third.kid, services.now()) is False
    after = await statuses(services)
    assert after == {**before, third.kid: "token:next"}
    assert after[second.kid] == "token:active"


async def test_instances_starting_together_make_one_key_per_purpose(
    settings: Settings, clock: FrozenClock
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        fleet = [
            await stack.enter_async_context(instance(settings, clock, started=False))
            for _ in range(4)
        ]
        await asyncio.gather(*(svc.keyring.load() for svc in fleet))
        found = await statuses(fleet[0])
        assert sorted(found.values()) == ["ledger:active", "token:active"]
        for purpose in ("token", "ledger"):
            assert len({svc.keyring.active_kid(purpose) for svc in fleet}) == 1


async def test_an_instance_that_read_no_keys_adopts_the_ones_made_meanwhile(
    settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        instance(settings, clock, started=False) as one,
        instance(settings, clock, started=False) as two,
    ):
        await one.keyring.load()
        real_read = Keyring._read
        reads = 0

        async def stale_first_read(self: Keyring) -> Sequence[StoredKey]:
            nonlocal reads
            reads += 1
            return [] if reads == 1 else await real_read(self)

        monkeypatch.setattr(Keyring, "_read", stale_first_read)
        await two.keyring.load()
        found = await statuses(one)
        assert sorted(found.values()) == ["ledger:active", "token:active"]
        for purpose in ("token", "ledger"):
            assert two.keyring.active_kid(purpose) == one.keyring.active_kid(purpose)


# --- settings ---------------------------------------------------------------------------------
def test_the_activation_delay_covers_caches_refreshes_and_skew(settings_factory: Any) -> None:
    settings: Settings = settings_factory()
    assert settings.key_activation_delay >= (
        settings.jwks_max_age + settings.keyring_refresh_interval + settings.clock_skew
    )
    with pytest.raises(ValidationError, match="key_activation_delay"):
        settings_factory(key_activation_delay=10, jwks_max_age=10)
    with pytest.raises(ValidationError, match="key_activation_delay"):
        settings_factory(key_activation_delay=16, jwks_max_age=10, clock_skew=5)
