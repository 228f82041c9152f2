"""Ledger fixtures: the instance's own sequencer, driven by hand, and a foreign signer."""

from __future__ import annotations

from typing import Any, Literal

import orjson
import pytest
from joserfc import jws
from joserfc.jwk import OKPKey

from authority.context import Services
from authority.ledger.sequencer import Sequencer
from authority.settings import Settings
from authority.tokens.jose import registry


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    # The background rounds wait an hour: each test runs its rounds with run_once(), and
    # small batches make a backlog take several transactions.
    result: Settings = settings_factory(checkpoint_interval=3600.0, ledger_batch_size=7)
    return result


@pytest.fixture
def sequencer(services: Services) -> Sequencer:
    assert services.sequencer is not None
    return services.sequencer


class StaticSigner:
    """Signs like ``Keyring.sign`` with a key the authority does not know."""

    def __init__(self, kid: str = "foreign-ledger-key") -> None:
        self.key = OKPKey.generate_key("Ed25519", parameters={"kid": kid})
        self.kid = kid

    def sign(
        self,
        claims: dict[str, Any],
        *,
        typ: str,
        purpose: Literal["token", "ledger"] = "token",
    ) -> str:
        header = {"alg": "EdDSA", "kid": self.kid, "typ": typ}
        return jws.serialize_compact(
            header, orjson.dumps(claims), self.key, registry=registry(["EdDSA"])
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}
