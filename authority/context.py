"""The services one authority instance runs with, chosen and wired by ``app.create_app``.

Domain code receives this object instead of importing implementations, so tests swap
the clock, the database or the hot state without patching.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from authority.approvals.webhook_signing import SecretSealer
from authority.baselines import Baselines
from authority.bus import EventBus
from authority.clock import Clock
from authority.counters import OpenItems
from authority.federation.verify import WorkloadVerifier
from authority.ledger.sequencer import Sequencer
from authority.metrics import Metrics
from authority.policy.active import ActivePolicy
from authority.rate_window import RateWindows
from authority.recordings.sealing import HeadSealer
from authority.secrets import SecretHasher
from authority.settings import Settings
from authority.shutdown import Drain
from authority.storage.agents import AgentStore
from authority.storage.api_keys import ApiKeyStore
from authority.storage.approval_decisions import ApprovalDecisionStore
from authority.storage.behaviour import BehaviourStore
from authority.storage.clients import ClientStore
from authority.storage.console import ConsoleStore
from authority.storage.containment import ContainmentStore
from authority.storage.controls import ControlsStore
from authority.storage.database import PoolUsage, pool_usage
from authority.storage.delegations import DelegationStore
from authority.storage.driver import Driver
from authority.storage.event_reader import EventReader
from authority.storage.exchange import ExchangeStore
from authority.storage.hot import HotState
from authority.storage.introspection import IntrospectionStore
from authority.storage.ledger_reader import LedgerReader
from authority.storage.owners import OwnerStore
from authority.storage.policies import PolicyStore
from authority.storage.recordings import RecordingStore
from authority.storage.replay import Sweeps
from authority.storage.resource_servers import ResourceServerStore
from authority.storage.revocation import RevocationStore
from authority.storage.sequencer import SequencerStore
from authority.storage.tools import ToolStore
from authority.storage.trust_domains import TrustDomainStore
from authority.storage.webhooks import WebhookStore
from authority.tokens.keyring import Keyring
from authority.tokens.own import OwnToken
from authority.traces import NO_TRACING, Tracing


class WebhookQueue(Protocol):
    """The owners' webhook deliveries (``approvals.webhooks.Dispatcher``)."""

    def queue(self, owner_id: str, kind: str, data: dict[str, Any]) -> bool: ...

    async def close(self) -> None: ...


class Background(Protocol):
    """A part of the instance that runs in the background until closed
    (``revocations.feed.FeedHub``)."""

    async def close(self) -> None: ...


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
    # The active Cedar policy version, confirmed every policy_refresh_interval.
    policy: ActivePolicy
    keyring: Keyring
    # The flows' storage ports (authority.storage), chosen by app.build_services.
    introspection_store: IntrospectionStore
    revocation_store: RevocationStore
    ledger_reader: LedgerReader
    sequencer_store: SequencerStore
    event_reader: EventReader
    delegation_store: DelegationStore
    approval_decision_store: ApprovalDecisionStore
    webhook_store: WebhookStore
    controls_store: ControlsStore
    containment_store: ContainmentStore
    recording_store: RecordingStore
    policy_store: PolicyStore
    # The registries of the management API (authority.management).
    owner_store: OwnerStore
    agent_store: AgentStore
    api_key_store: ApiKeyStore
    resource_server_store: ResourceServerStore
    tool_store: ToolStore
    trust_domain_store: TrustDomainStore
    console_store: ConsoleStore
    # Baselines and promotion proposals (authority.behaviour): background and management only.
    behaviour_store: BehaviourStore
    exchange_store: ExchangeStore
    client_store: ClientStore
    metrics: Metrics
    # Opens the owners' webhook secrets (approvals.webhook_signing).
    webhook_sealer: SecretSealer
    # Seals and opens the heads of recorded calls (recordings.sealing).
    recording_sealer: HeadSealer
    # What happens after a decision (authority.domain_events), subscribed in authority.app.
    events: EventBus = field(default_factory=EventBus)
    # Made by app.build_services, which they need to be made (the types that would import
    # this module are Protocols here): the webhook queue and the revocation feed's hub.
    webhooks: WebhookQueue | None = None
    revocation_feed: Background | None = None
    # Introspection's per-client windows, counted in process (authority.rate_window);
    # None: one hot-state round trip per request.
    introspection_rate: RateWindows | None = None
    # Verifies platform tokens under trust domains, holding their key caches; made on
    # first use (grants.workload_auth.verifier), closed by app.stop.
    workload_verifier: WorkloadVerifier | None = None
    # Delegation credentials already verified, by digest (grants.agent_auth).
    delegation_cache: dict[str, OwnToken] = field(default_factory=dict)
    # The kill switch's cascades running in the background (management.cascade).
    cascades: set[asyncio.Task[Any]] = field(default_factory=set)
    # Open request bodies and feed streams (endpoints.limits).
    open_items: OpenItems = field(default_factory=OpenItems)
    # Set when the instance starts to stop (authority.shutdown): readiness and the feed.
    drain: Drain = field(default_factory=Drain)
    # Started by app.start() once the keyring is loaded; tests call its run_once().
    sequencer: Sequencer | None = None
    # Deletes spent JWT ids once their JWTs have expired (storage.replay); started by start().
    jti_sweeper: Sweeps | None = None
    # Deletes recorded heads past their retention (recordings.sweeper); started by start().
    recording_sweeper: Background | None = None
    # What each agent usually does (authority.baselines), read by the exchange in process;
    # kept up to date by the behaviour worker (authority.behaviour), started by start().
    baselines: Baselines = field(default_factory=Baselines)
    behaviour_worker: Background | None = None
    # OpenTelemetry traces, when exported (authority.traces); a no-op otherwise.
    tracing: Tracing = field(default_factory=lambda: NO_TRACING)

    def now(self) -> int:
        return int(self.clock.now())

    def pools(self) -> tuple[tuple[str, PoolUsage], ...]:
        """Each connection pool's use now, by name (the metrics' gauges)."""
        return (("engine", pool_usage(self.engine)), ("hot_path", self.sql.pool_usage()))


#: Opens the services for one operator command (``authority admin``, ``authority keys``);
#: ``authority.cli`` passes ``authority.app.operator_services``, so that the commands
#: never import what wires them.
OpenServices = Callable[[Settings], AbstractAsyncContextManager[Services]]
