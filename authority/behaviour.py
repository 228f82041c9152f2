"""Behaviour that earns and loses trust: each agent's baseline, and the calls far outside it.

The exchange asks ``deviation`` (in process, ``authority.baselines``) about every call the
rules allow; a deviation makes the call a ``NeedsApproval(BEHAVIOUR_STEP_UP)``, with the
explanation the owner is shown in the approval request. Once the owner approves, the CIBA
poll issues the token as for any approval, and the tool joins the agent's baseline
(``on_issued``). Every step-up is a ``behaviour_step_up`` ledger entry and one count
towards the agent's containment (``containment_behaviour``): an agent that keeps
deviating is quarantined as one that keeps overstepping its delegation is.

The baseline itself is learned in the background, never on the exchange's path: the
worker (``Worker``) folds the issued grants into the tables every
``behaviour_refresh_interval`` seconds (``refresh``), loads what changed, and weighs the
promotion rule for the agents that called (``authority.promotion``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Final

from authority import containment_behaviour, promotion
from authority.approvals.requests import CallRequest
from authority.baselines import DAY, Deviation, Rules
from authority.context import Services
from authority.domain_events import ApprovalRequested, ExchangeIssued
from authority.management import agents
from authority.management.auth import READERS, Principal, require_role
from authority.policy.reasons import Reason
from authority.settings import Settings

log = logging.getLogger("authority.behaviour")

#: Seconds a grant's minute is given to commit before it is folded: a fold covers whole
#: minutes that ended at least this long ago.
SETTLE: Final = 10
#: Until the baselines are first loaded the exchange cannot tell a learned agent from a
#: new one: it answers this (503), never a token on the baseline's say-so.
NOT_LOADED: Final = "The agents' baselines are not loaded yet; try again later."
#: Most used calls and latest step-ups an agent's baseline view shows.
VIEW_LIMIT: Final = 100


def rules(settings: Settings) -> Rules:
    return Rules(
        learning_calls=settings.behaviour_learning_calls,
        learning_seconds=settings.behaviour_learning_days * DAY,
        burst_factor=settings.behaviour_burst_factor,
        burst_floor=settings.behaviour_burst_floor,
    )


def deviation(services: Services, agent_id: str, tool: str, now: int) -> Deviation | None:
    """The deviation of this call from the agent's baseline, or None."""
    return services.baselines.check(agent_id, tool, now, rules(services.settings))


def on_issued(services: Services, event: ExchangeIssued) -> None:
    """``ExchangeIssued``: the tool is part of the baseline; the minute's count rises."""
    if event.tool is not None:
        services.baselines.observe(event.agent_id, event.tool, services.now())


async def on_step_up(services: Services, event: ApprovalRequested) -> None:
    """``ApprovalRequested`` by the baseline: its ledger entry, then containment's count.

    The approval request and its ``pending`` grant (reason ``behaviour_step_up``) are
    committed already; this entry adds what the owner was shown.
    """
    if event.deviation is None or event.explanation is None:
        return
    entry = (
        "behaviour_step_up",
        1,
        services.now(),
        {
            "approval_id": event.approval_id,
            "agent_id": event.agent_id,
            "owner_id": event.owner_id,
            "tool": event.tool,
            "deviation": event.deviation,
            "explanation": event.explanation,
        },
    )
    try:
        await services.behaviour_store.note([entry])
    except Exception as exc:  # the request's answer (pending) stands; the log says what is missing
        log.error("step-up %s of %s not recorded (%s)", event.approval_id, event.agent_id, exc)
    await containment_behaviour.on_step_up(services, event)


async def refresh(services: Services) -> int:
    """Fold the issued grants into the tables, load them, weigh promotions; grants folded."""
    now = services.now()
    until = (now - SETTLE) // 60 * 60
    known = services.baselines
    folded = await services.behaviour_store.fold(until=until, start=0)
    # The agents that called since the last load (all of them the first time); the
    # promotion rule is weighed for those that called since (none at the first load, so
    # a start does not weigh every agent there is), not for every agent every round.
    first = not known.loaded
    since = 0 if first else max(0, known.loaded_through - 60)
    baselines = await services.behaviour_store.baselines(since=since)
    known.load(baselines)
    known.loaded_through = until
    for stored in () if first else baselines:
        try:
            await promotion.consider(services, stored.agent_id)
        except Exception as exc:  # one agent's proposal failing does not stop the others'
            log.warning("promotion of %s not weighed (%s)", stored.agent_id, type(exc).__name__)
    return folded or 0


@dataclass(frozen=True, slots=True)
class StepUpView:
    approval_id: str
    created_at: int
    status: str
    explanation: str | None


@dataclass(frozen=True, slots=True)
class CallView:
    tool: str
    resource: str
    action: str
    calls: int
    first_at: int
    last_at: int


@dataclass(frozen=True, slots=True)
class BaselineView:
    """An agent's baseline as the owner sees it, and the calls it sent to the owner."""

    agent_id: str
    learning: bool
    calls: int
    active_minutes: int
    usual_per_minute: float
    first_at: int | None
    last_at: int | None
    tools: list[str]
    most_used: list[CallView]
    step_ups: list[StepUpView]


async def view(services: Services, principal: Principal, agent_id: str) -> BaselineView:
    """The baseline of a visible agent (owners see their own; admins and auditors all)."""
    require_role(principal, *READERS)
    await agents.found(services, agent_id, agents.scope(principal))
    store = services.behaviour_store
    stored, rows = await store.baseline(agent_id, limit=VIEW_LIMIT)
    step_ups = await store.step_ups(
        agent_id, reason=Reason.BEHAVIOUR_STEP_UP.value, limit=VIEW_LIMIT
    )
    shown = rules(services.settings)
    calls = stored.calls if stored is not None else 0
    minutes = stored.active_minutes if stored is not None else 0
    first_at = stored.first_at if stored is not None else None
    learning = (
        first_at is None
        or calls < shown.learning_calls
        or services.now() - first_at < shown.learning_seconds
    )
    return BaselineView(
        agent_id=agent_id,
        learning=learning,
        calls=calls,
        active_minutes=minutes,
        usual_per_minute=round(calls / minutes, 3) if minutes else 0.0,
        first_at=first_at,
        last_at=stored.last_at if stored is not None else None,
        tools=sorted(stored.tools) if stored is not None else [],
        most_used=[
            CallView(r.tool, r.resource, r.action, r.calls, r.first_at, r.last_at) for r in rows
        ],
        step_ups=[
            StepUpView(
                s.approval_id, s.created_at, s.status, CallRequest.from_json(s.request).explanation
            )
            for s in step_ups
        ],
    )


class Worker:
    """``refresh`` every ``behaviour_refresh_interval`` seconds, until closed."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        interval = self._services.settings.behaviour_refresh_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await refresh(self._services)
            except Exception as exc:  # the next round tries again; exchanges use what is loaded
                log.warning("behaviour refresh failed (%s)", type(exc).__name__)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def start(services: Services) -> Worker:
    """Load the baselines once before the first request; keep them up to date after."""
    try:
        await refresh(services)
    except Exception as exc:  # the worker tries again; until then the exchange answers 503
        log.warning("baselines not loaded (%s)", type(exc).__name__)
    worker = Worker(services)
    worker.start()
    return worker
