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

No label ever carries a token, a secret, a raw path or a query string.
"""

from __future__ import annotations

import contextvars
import time
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

OTHER: Final = "other"
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


class Metrics:
    """The instance's registry and every series it exports."""

    def __init__(self, max_agents: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.max_agents = max_agents
        self._agents: set[str] = set()
        r = self.registry
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

    def agent_label(self, agent_id: str) -> str:
        if agent_id in self._agents:
            return agent_id
        if len(self._agents) < self.max_agents:
            self._agents.add(agent_id)
            return agent_id
        return OTHER

    def exchange(self, decision: str, agent_id: str | None) -> None:
        self.exchanges.labels(decision).inc()
        if agent_id is not None:
            self.agent_exchanges.labels(self.agent_label(agent_id), decision).inc()
