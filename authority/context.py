"""The services one authority instance runs with, chosen and wired by ``app.create_app``.

Domain code receives this object instead of importing implementations, so tests swap
the clock, the database or the hot state without patching.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from authority.bus import EventBus
from authority.clock import Clock
from authority.ledger.sequencer import Sequencer
from authority.metrics import Metrics
from authority.policy.cedar import CedarPolicy
from authority.secrets import SecretHasher
from authority.settings import Settings
from authority.storage.driver import Driver
from authority.storage.hot import HotState
from authority.storage.replay import Sweeper
from authority.tokens.keyring import Keyring


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    # The same pool in autocommit mode, for reads on the hot path (storage.database.reader).
    reader: AsyncEngine
    # The hot path's few statements, run on the database driver (storage.driver).
    sql: Driver
    hot: HotState
    hasher: SecretHasher
    policy: CedarPolicy
    keyring: Keyring
    metrics: Metrics
    # What happens after a decision (authority.domain_events), subscribed in authority.app.
    events: EventBus = field(default_factory=EventBus)
    # Filled in by later layers (keyring, policy, ledger, feed) as create_app wires them.
    extras: dict[str, Any] = field(default_factory=dict)
    # Started by app.start() once the keyring is loaded; tests call its run_once().
    sequencer: Sequencer | None = None
    # Deletes spent JWT ids once their JWTs have expired (storage.replay); started by start().
    jti_sweeper: Sweeper | None = None

    def now(self) -> int:
        return int(self.clock.now())


#: Opens the services for one operator command (``authority admin``, ``authority keys``);
#: ``authority.cli`` passes ``authority.app.operator_services``, so that the commands
#: never import what wires them.
OpenServices = Callable[[Settings], AbstractAsyncContextManager[Services]]
