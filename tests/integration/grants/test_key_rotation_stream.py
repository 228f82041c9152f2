"""Key rotation while agents exchange: a verifier that refreshes its JWKS on an unknown
kid never fails, and tokens signed before a rotation verify until they expire."""

from __future__ import annotations

from typing import Any

import httpx
import jwt

from tests.support import RS_AUDIENCE, World


class RefreshingVerifier:
    """A resource server's local verifier: cached JWKS, refetched only on an unknown kid."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.keys: dict[str, Any] = {}
        self.fetches = 0

    async def _fetch(self) -> None:
        self.fetches += 1
        jwks = (await self.client.get("/.well-known/jwks.json")).json()
        self.keys = {str(k.key_id): k for k in jwt.PyJWKSet.from_dict(jwks).keys}

    async def verify(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header["kid"] not in self.keys:
            await self._fetch()
        key = self.keys[header["kid"]]
        # The authority runs on a test clock moved forward past the activation delay;
        # PyJWT reads the wall clock, so iat/exp get that much leeway and no more.
        # The algorithm is the one the key is published for (RFC 8725 §3.1).
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=[key.algorithm_name], audience=RS_AUDIENCE, leeway=120
        )
        return claims


async def test_rotation_during_a_stream_of_exchanges(world: World) -> None:
    verifier = RefreshingVerifier(world.client)
    keyring = world.services.keyring
    settings = world.services.settings
    issued: list[str] = []
    kids: set[str] = set()
    failures = 0
    for step in range(60):
        if step == 10:
            await keyring.rotate("token", actor="test")
        if step in (20, 40):
            world.clock.advance(settings.key_activation_delay + 1)
            await keyring.refresh()
        if step == 30:
            await keyring.rotate("token", actor="test")
        response = await world.exchange()
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        issued.append(token)
        kids.add(jwt.get_unverified_header(token)["kid"])
        try:
            await verifier.verify(token)
        except jwt.PyJWTError:
            failures += 1
    assert failures == 0
    assert len(kids) == 3  # two rotations took effect mid-stream
    # The delegation credential was signed by the first key: it still works after both.
    assert (await world.exchange()).status_code == 200


async def test_new_key_is_published_before_it_signs(world: World) -> None:
    keyring = world.services.keyring
    before = jwt.get_unverified_header((await world.exchange()).json()["access_token"])["kid"]
    info = await keyring.rotate("token", actor="test")
    published = (await world.client.get("/.well-known/jwks.json")).json()
    assert info.kid in {k["kid"] for k in published["keys"]}
    still = jwt.get_unverified_header((await world.exchange()).json()["access_token"])["kid"]
    assert still == before
