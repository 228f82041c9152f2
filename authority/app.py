"""``create_app(settings)``: the one place where implementations are chosen and wired."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from authority import behaviour, metrics, metrics_sampling, subscribers, traces
from authority.approvals import webhook_signing, webhooks
from authority.clock import Clock, SystemClock
from authority.console import web as console
from authority.context import Services
from authority.endpoints.request_log import RequestLog
from authority.ledger.sequencer import Sequencer
from authority.management import cascade
from authority.policy import versions as policy_versions
from authority.policy.active import ActivePolicy
from authority.rate_window import RateWindows
from authority.recordings.sealing import HeadSealer
from authority.recordings.sweeper import RecordingSweeper
from authority.revocations import feed as revocation_feed
from authority.secrets import SecretHasher
from authority.settings import Settings
from authority.shutdown import chain_signals
from authority.storage.database import (
    downgrade,
    make_engine,
    migrate,
    reader,
    schema_is_current,
)
from authority.storage.driver import make_driver
from authority.storage.hot import HotState, MemoryHotState, RedisHotState
from authority.storage.ledger_reader import LedgerReader
from authority.storage.secret_key import load_secret_key
from authority.storage.sql.agents import SqlAgentStore
from authority.storage.sql.api_keys import SqlApiKeyStore
from authority.storage.sql.approval_decisions import SqlApprovalDecisionStore
from authority.storage.sql.behaviour import SqlBehaviourStore
from authority.storage.sql.clients import SqlClientStore
from authority.storage.sql.console import SqlConsoleStore
from authority.storage.sql.containment import SqlContainmentStore
from authority.storage.sql.controls import SqlControlsStore
from authority.storage.sql.delegations import SqlDelegationStore
from authority.storage.sql.event_reader import SqlEventReader
from authority.storage.sql.exchange import SqlExchangeStore
from authority.storage.sql.introspection import SqlIntrospectionStore
from authority.storage.sql.keys import SqlKeyStore
from authority.storage.sql.ledger_reader import SqlLedgerReader
from authority.storage.sql.owners import SqlOwnerStore
from authority.storage.sql.policies import SqlPolicyStore
from authority.storage.sql.recordings import SqlRecordingStore
from authority.storage.sql.replay import Sweeper
from authority.storage.sql.resource_servers import SqlResourceServerStore
from authority.storage.sql.revocation import SqlRevocationStore
from authority.storage.sql.sequencer import SqlSequencerStore
from authority.storage.sql.tools import SqlToolStore
from authority.storage.sql.trust_domains import SqlTrustDomainStore
from authority.storage.sql.webhooks import SqlWebhookStore
from authority.tokens.keyring import Keyring

from .endpoints import (
    approvals,
    controls,
    delegations,
    discovery,
    feed,
    health,
    introspection,
    ledger,
    management,
    openapi,
    policies,
    recordings,
    revocation,
    token,
)
from .endpoints import (
    behaviour as behaviour_endpoint,
)
from .endpoints import metrics as metrics_endpoint
from .endpoints.http import http_error

__all__ = [
    "build_services",
    "create_app",
    "downgrade",
    "ledger_reader",
    "ledger_sequencer",
    "migrate",
    "operator_services",
    "routes",
    "schema_is_current",
    "start",
    "stop",
]

log = logging.getLogger("authority")


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    hot: HotState | None = None,
    tracing: traces.Tracing | None = None,
) -> Services:
    """Choose the implementations the settings ask for (nothing is connected yet).

    ``tracing``: the traces' provider (tests pass one with an in-memory exporter);
    default: what the settings ask for (``traces.from_settings``).
    """
    if hot is None:
        hot = (
            RedisHotState(
                settings.redis_url, prefix=settings.redis_prefix, timeout=settings.redis_timeout
            )
            if settings.redis_url
            else MemoryHotState()
        )
    clock = clock or SystemClock()
    # Well inside the ledger's straggler window, so no entry can commit behind it.
    transaction_timeout = settings.ledger_straggler_window / 5
    engine = make_engine(
        settings.sqlalchemy_url,
        pool_size=settings.database_pool_size,
        transaction_timeout=transaction_timeout,
        wait_timeout=settings.database_timeout,
        background_checkpoints=True,
    )
    secret_key = load_secret_key(settings)
    sql = make_driver(
        settings.sqlalchemy_url,
        pool_size=settings.database_pool_size,
        # The hot path answers within a bound: a stalled database is a 503 after
        # database_timeout, not after the straggler-window bound of everything else.
        transaction_timeout=min(transaction_timeout, settings.database_timeout),
        background_checkpoints=True,
    )
    tracing = tracing or traces.from_settings(settings)
    if tracing.tracer is not None:
        # Imported here: OpenTelemetry is needed only by an instance that exports traces.
        from authority.storage import traced

        sql, hot = traced.instrument(tracing.tracer, engine, sql, hot)
    autocommit = reader(engine)
    policy_store = SqlPolicyStore(engine, autocommit)
    services = Services(
        settings=settings,
        clock=clock,
        engine=engine,
        reader=autocommit,
        sql=sql,
        hot=hot,
        hasher=SecretHasher(secret_key),
        keyring=Keyring(SqlKeyStore(engine), clock, settings, secret_key=secret_key),
        introspection_store=SqlIntrospectionStore(sql),
        revocation_store=SqlRevocationStore(engine, autocommit),
        ledger_reader=SqlLedgerReader(autocommit),
        sequencer_store=SqlSequencerStore(engine),
        event_reader=SqlEventReader(autocommit),
        delegation_store=SqlDelegationStore(engine),
        approval_decision_store=SqlApprovalDecisionStore(engine),
        webhook_store=SqlWebhookStore(engine, autocommit),
        controls_store=SqlControlsStore(engine, autocommit),
        containment_store=SqlContainmentStore(engine, autocommit),
        recording_store=SqlRecordingStore(engine, autocommit),
        policy_store=policy_store,
        owner_store=SqlOwnerStore(engine),
        agent_store=SqlAgentStore(engine),
        api_key_store=SqlApiKeyStore(engine),
        resource_server_store=SqlResourceServerStore(engine),
        tool_store=SqlToolStore(engine),
        trust_domain_store=SqlTrustDomainStore(engine),
        console_store=SqlConsoleStore(engine, autocommit),
        behaviour_store=SqlBehaviourStore(engine, autocommit),
        # The exchange, the CIBA poll and client authentication: every statement of
        # theirs on the hot path's driver, one pool per request.
        exchange_store=SqlExchangeStore(
            sql,
            batch_lock_timeout=settings.exchange_batch_lock_timeout,
            group_commit=settings.exchange_group_commit,
        ),
        client_store=SqlClientStore(sql),
        policy=ActivePolicy(
            policy_store,
            interval=settings.policy_refresh_interval,
            timeout=settings.database_timeout,
        ),
        metrics=metrics.Metrics(
            settings.metrics_max_agents, sample_interval=settings.metrics_sample_interval
        ),
        webhook_sealer=webhook_signing.SecretSealer(secret_key),
        recording_sealer=HeadSealer(secret_key),
    )
    # Idle until first used: the webhook workers start with the first event, the feed's
    # hub with the first stream.
    services.webhooks = webhooks.Dispatcher(services)
    hub = revocation_feed.FeedHub(services)
    services.revocation_feed = hub
    services.drain.on_begin(hub.wake_streams)
    services.metrics.add_sampler(functools.partial(metrics_sampling.sample, services))
    services.introspection_rate = RateWindows.from_settings(hot, settings)
    services.tracing = tracing
    subscribers.wire(services)
    if tracing.enabled:
        traces.wire(services.events)
    return services


@contextlib.asynccontextmanager
async def operator_services(settings: Settings, *, keys: bool) -> AsyncIterator[Services]:
    """The services for one operator command, wired as the server wires them.

    The schema is brought up to date first where the server would do it at start-up (the
    embedded default), so a command works on a fresh data directory. With ``keys`` the
    keyring is loaded and everything is stopped as the server stops it; without, only
    the database and the hot state are used, and closed.
    """
    if settings.is_embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.should_auto_migrate:
        await migrate(settings.sqlalchemy_url)
    services = build_services(settings)
    try:
        if keys:
            await services.keyring.load()
        yield services
    finally:
        if keys:
            await stop(services)
        else:
            await services.hot.close()
            await services.engine.dispose()
            services.tracing.shutdown()


@contextlib.asynccontextmanager
async def ledger_reader(settings: Settings) -> AsyncIterator[LedgerReader]:
    """The ledger's read port for ``authority ledger export``, on a pool of its own.

    Nothing else: no keyring, no hot state, no secret key and no migration; an export
    reads what the database holds, as it is.
    """
    engine = make_engine(
        settings.sqlalchemy_url,
        pool_size=1,
        transaction_timeout=settings.ledger_straggler_window / 5,
    )
    try:
        yield SqlLedgerReader(reader(engine))
    finally:
        await engine.dispose()


async def start(services: Services) -> None:
    """Connect and load what every request needs, once."""
    if services.settings.is_embedded:
        services.settings.data_dir.mkdir(parents=True, exist_ok=True)
    if services.settings.should_auto_migrate:
        await migrate(services.settings.sqlalchemy_url)
    services.drain.bind(asyncio.get_running_loop())
    services.sql.start()
    await services.keyring.load()
    # The policy file becomes version 1 of a fresh database; then the active version.
    await policy_versions.seed_from_file(
        services.policy_store, services.settings.policy_file, now=services.now()
    )
    await services.policy.refresh()
    services.keyring.start_refresh()
    services.sequencer = ledger_sequencer(services)
    services.sequencer.start()
    services.jti_sweeper = Sweeper(
        services.sql, services.clock, interval=services.settings.used_jti_sweep_interval
    )
    services.jti_sweeper.start()
    sweeper = RecordingSweeper(services)
    sweeper.start()
    services.recording_sweeper = sweeper
    # A kill switch's owner stays contained until its cascade finishes: finish the ones
    # a stopped or crashed process left behind.
    cascade.resume_unfinished(services)
    services.metrics.start()
    services.behaviour_worker = await behaviour.start(services)


def ledger_sequencer(services: Services) -> Sequencer:
    settings = services.settings
    return Sequencer(
        services.sequencer_store,
        services.keyring,
        services.clock,
        issuer=settings.issuer,
        interval=settings.checkpoint_interval,
        straggler_window=settings.ledger_straggler_window,
        batch_size=settings.ledger_batch_size,
    )


async def stop(services: Services) -> None:
    if services.webhooks is not None:
        await services.webhooks.close()
    await cascade.shutdown(services)
    if services.revocation_feed is not None:
        await services.revocation_feed.close()
    if services.sequencer is not None:
        await services.sequencer.stop()
    if services.jti_sweeper is not None:
        await services.jti_sweeper.stop()
    if services.recording_sweeper is not None:
        await services.recording_sweeper.close()
    if services.behaviour_worker is not None:
        await services.behaviour_worker.close()
    await services.keyring.stop_refresh()
    if services.workload_verifier is not None:
        await services.workload_verifier.aclose()
    if services.introspection_rate is not None:
        await services.introspection_rate.close()
    await services.hot.close()
    await services.sql.close()
    await services.engine.dispose()
    await services.metrics.close()
    services.tracing.shutdown()


def routes(settings: Settings) -> list[BaseRoute]:
    # Starlette tries routes in order: the ones every tool call pays for come first.
    return [
        *token.routes,
        *introspection.routes,
        *revocation.routes,
        *health.routes,
        *discovery.routes(settings),
        *management.routes,
        *delegations.routes,
        *ledger.routes,
        *feed.routes,
        *controls.routes,
        *policies.routes,
        *approvals.routes,
        *behaviour_endpoint.routes,
        *recordings.routes,
        *metrics_endpoint.routes,
        *openapi.routes,
        *(console.routes() if settings.console_enabled else []),
    ]


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    hot: HotState | None = None,
    services: Services | None = None,
) -> Starlette:
    """The ASGI application. Pass ``services`` to share one set between apps in tests."""
    svc = services or build_services(settings, clock=clock, hot=hot)
    owns_services = services is None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if owns_services:
            await start(svc)
            # SIGTERM begins the drain before it reaches the server (authority.shutdown).
            chain_signals(svc.drain)
            # What the process has loaded by now (modules, keys, policy) lives as long as
            # it does: kept out of the cyclic collector's full passes, which otherwise
            # walk it all and stall every request in flight for tens of milliseconds.
            gc.freeze()
        try:
            yield
        finally:
            if owns_services:
                await stop(svc)

    handlers: dict[Any, Any] = {HTTPException: http_error}
    table = routes(svc.settings)
    # The one middleware of ours, outermost after Starlette's own error handling: every
    # answer carries its request id, has its log line, is counted and timed.
    middleware = [Middleware(RequestLog, services=svc, routes=table)]
    app = Starlette(
        routes=table,
        lifespan=lifespan,
        exception_handlers=handlers,
        middleware=middleware,
    )
    app.state.services = svc
    return app
