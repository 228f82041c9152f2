"""Prometheus metrics (text exposition format 0.0.4) of one authority instance.

Every instance keeps its own registry (not the process-wide default), so two apps in
one process, as the tests run them, do not count into each other; Prometheus sums over
instances. Series and their labels:

* ``authority_http_requests_total{method, route, status}`` and
  ``authority_http_request_duration_seconds{method, route}``: ``route`` is the route's
  path template (``/v1/agents/{agent_id}``), never the raw path, so ids and anything a
  client puts in a URL do not become series; unmatched paths are ``unmatched``.
* ``authority_exchanges_total{decision}``: issued, denied, pending (sent for approval).
  The shares the issue asks for are PromQL ratios of these.
* ``authority_agent_exchanges_total{agent, decision}``: the same per agent, with bounded
  cardinality: the first ``metrics_max_agents`` agents an instance sees get a series of
  their own, every later one is counted under ``agent="other"``. Only authenticated
  agents are ever a label value (a forged attestation cannot mint series). Per-agent
  figures for more agents than that come from the ledger, which holds every decision.
* ``authority_time_to_contain_seconds``: from the arrival of the request that crossed
  the containment threshold to the quarantine committed (effective for every instance,
  which read agent status from SQL) and published on the revocation feed.
* ``authority_kill_switch_time_to_contain_seconds``: from the arrival of a kill switch
  to its owner's containment committed (every instance refuses the owner's next call);
  ``authority_kill_switch_cascade_seconds``: from then to the last of the owner's agents
  and delegations stopped one by one.
* ``authority_containments_total``, ``authority_approvals_total{event}``,
  ``authority_webhook_deliveries_total{outcome}``, ``authority_client_disconnects_total``
  (clients that hung up mid-body: a normal event, logged at debug level only).
* ``authority_exchange_denials_total{reason}``: denied exchanges by reason code; only
  the codes of ``authority.policy.reasons.Reason`` are label values, anything else is
  ``reason="other"`` (a bounded label whatever a caller sends).
* ``authority_build_info{version, python}``: always 1.
* ``authority_db_pool_checked_out{pool}`` and ``authority_db_pool_size{pool}``: the
  connections in use and the pool's size, for ``pool="engine"`` (SQLAlchemy: management
  and background work; it may open as many again as overflow) and ``pool="hot_path"``
  (the exchange's and introspection's own driver).
* ``authority_ledger_sequenced_timestamp_seconds``: the start of the newest sequencing
  round that left no committed entry without its leaf and checkpoint (any instance's
  round, where this one lost the lock to it, does not move it: take the ``max`` over
  instances), and ``authority_ledger_sequencer_lag_seconds``: now minus that, the
  longest any entry committed since may have waited for its checkpoint.
* ``authority_feed_streams_open``: revocation feed streams open now.
* ``process_*``: the process collector's series (CPU seconds, resident memory, open
  files, start time; Linux only, as they come from ``/proc``).

No label ever carries a token, a secret, a raw path or a query string.

Several workers: see ``authority.metrics_workers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from authority import __version__, metrics_workers
from authority.policy.reasons import Reason

log = logging.getLogger("authority.metrics")

OTHER: Final = "other"
REASONS: Final = frozenset(reason.value for reason in Reason)
SEQUENCED: Final = "authority_ledger_sequenced_timestamp_seconds"
METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: When the request being served arrived (``time.perf_counter``), set by the middleware.
REQUEST_STARTED: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "authority_request_started", default=None
)


def request_started() -> float:
    """When the current request arrived, or now when not serving one."""
    started = REQUEST_STARTED.get()
    return started if started is not None else time.perf_counter()


class _Scrape(Collector):
    """One scrape's families: the source's, then the lag derived from them."""

    def __init__(self, families: list[Metric], now: float) -> None:
        self._families = families
        self._now = now

    def collect(self) -> Iterable[Metric]:
        yield from self._families
        sequenced = [
            sample.value
            for family in self._families
            if family.name == SEQUENCED
            for sample in family.samples
        ]
        if sequenced and max(sequenced) > 0:
            lag = GaugeMetricFamily(
                "authority_ledger_sequencer_lag_seconds",
                "Now minus authority_ledger_sequenced_timestamp_seconds: the longest a "
                "committed ledger entry may have waited for its checkpoint.",
            )
            lag.add_metric([], max(0.0, self._now - max(sequenced)))
            yield lag


class Metrics:
    """The instance's registry and every series it exports."""

    def __init__(self, max_agents: int, *, sample_interval: float = 5.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.max_agents = max_agents
        self.sample_interval = sample_interval
        self.shared_dir = metrics_workers.shared_directory()
        self._agents: set[str] = set()
        #: Series children by their label values, looked up once (``_child``).
        self._children: dict[tuple[Any, ...], Any] = {}
        self._samplers: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        r = self.registry
        if self.shared_dir is None:
            ProcessCollector(registry=r)
        self.requests = Counter(
            "authority_http_requests",
            "HTTP requests served, by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "authority_http_request_duration_seconds",
            "Time from request arrival to the end of the response.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.exchanges = Counter(
            "authority_exchanges",
            "Token exchange decisions: issued, denied or pending (sent for approval).",
            ["decision"],
            registry=r,
        )
        self.agent_exchanges = Counter(
            "authority_agent_exchanges",
            "Token exchange decisions per agent (bounded: see metrics_max_agents).",
            ["agent", "decision"],
            registry=r,
        )
        self.time_to_contain = Histogram(
            "authority_time_to_contain_seconds",
            "From the request that crossed the containment threshold to the quarantine "
            "committed and published.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.kill_time_to_contain = Histogram(
            "authority_kill_switch_time_to_contain_seconds",
            "From the kill switch's request to its owner's containment committed.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.kill_cascade = Histogram(
            "authority_kill_switch_cascade_seconds",
            "From a kill switch's containment to every agent and delegation it covers stopped.",
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=r,
        )
        self.containments = Counter(
            "authority_containments", "Agents quarantined automatically.", registry=r
        )
        self.approvals = Counter(
            "authority_approvals",
            "Approval events: requested, approved, denied, issued, refused.",
            ["event"],
            registry=r,
        )
        self.client_disconnects = Counter(
            "authority_client_disconnects",
            "Clients that hung up before their request body was complete.",
            registry=r,
        )
        self.webhooks = Counter(
            "authority_webhook_deliveries",
            "Webhook delivery outcomes: delivered, retried, failed, dropped.",
            ["outcome"],
            registry=r,
        )

        self.denials = Counter(
            "authority_exchange_denials",
            "Denied exchanges by reason code (a code this version does not know: other).",
            ["reason"],
            registry=r,
        )
        self.build_info = Gauge(
            "authority_build_info",
            "The running version of authority and of Python; always 1.",
            ["version", "python"],
            multiprocess_mode="max",
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.pool_checked_out = Gauge(
            "authority_db_pool_checked_out",
            "Database connections in use, by pool (engine, hot_path).",
            ["pool"],
            multiprocess_mode="liveall",
            registry=r,
        )
        self.pool_size = Gauge(
            "authority_db_pool_size",
            "Database connections a pool keeps, by pool (the engine may overflow as many again).",
            ["pool"],
            multiprocess_mode="liveall",
            registry=r,
        )
        self.sequenced = Gauge(
            SEQUENCED,
            "Start of the newest sequencing round that left no committed ledger entry "
            "without its leaf and checkpoint (Unix time).",
            multiprocess_mode="max",
            registry=r,
        )
        self.feed_streams = Gauge(
            "authority_feed_streams_open",
            "Revocation feed streams open now.",
            multiprocess_mode="livesum",
            registry=r,
        )

    # --- what is counted as it happens --------------------------------------------------
    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once: ``labels()`` validates and locks on
        every call. Bounded as the series are: only label values that become a series
        (a reason code or ``other``, a counted agent or ``other``, a decision) are kept,
        and the library keeps the very same child for as long as this instance lives."""
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def deny(self, reason: str) -> None:
        """Count a denial under its reason code; any other string is ``other``."""
        self._child(self.denials, reason if reason in REASONS else OTHER).inc()

    def agent_label(self, agent_id: str) -> str:
        if agent_id in self._agents:
            return agent_id
        if len(self._agents) < self.max_agents:
            self._agents.add(agent_id)
            return agent_id
        return OTHER

    def exchange(self, decision: str, agent_id: str | None) -> None:
        self._child(self.exchanges, decision).inc()
        if agent_id is not None:
            self._child(self.agent_exchanges, self.agent_label(agent_id), decision).inc()

    # --- what is sampled: gauges of the instance's state -----------------------------
    def add_sampler(self, sampler: Callable[[], None]) -> None:
        """``sampler`` sets gauges from the instance's state before each scrape (and, with
        several workers, every ``sample_interval`` seconds)."""
        self._samplers.append(sampler)

    def sample(self) -> None:
        for sampler in self._samplers:
            try:
                sampler()
            except Exception as exc:  # a gauge is never worth a failed scrape
                log.warning("metrics sampler failed: %s", type(exc).__name__)

    def start(self) -> None:
        """Sample now and, with several workers, in the background until ``close``: a
        scrape reaches one worker, so each must have written its own gauges."""
        self.sample()
        if self.shared_dir is not None and self._task is None:
            self._task = asyncio.create_task(self._sample_forever(), name="metrics-sampler")

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sample_interval)
            self.sample()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.shared_dir is not None:
            # This worker's live gauges go; its counters stay in the others' totals.
            metrics_workers.mark_dead(os.getpid(), self.shared_dir)

    # --- the exposition ---------------------------------------------------------------
    def exposition(self, now: float) -> bytes:
        """The text format of every series: this instance's, or every worker's."""
        self.sample()
        if self.shared_dir is None:
            families = list(self.registry.collect())
        else:
            families = metrics_workers.collect(self.shared_dir)
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(_Scrape(families, now))
        return generate_latest(scrape)
