"""Who acts on what happens after a decision: the subscriptions to the domain events
(``authority.domain_events``), made once per instance by ``authority.app``.

The order of subscription is the order of effects: a denial is counted in the metrics
before containment weighs it, as it was before the two were decoupled.
"""

from __future__ import annotations

from authority import behaviour, containment, containment_calls, decision_log
from authority.approvals import webhooks
from authority.context import Services
from authority.domain_events import (
    AgentContained,
    ApprovalRedeemed,
    ApprovalRequested,
    CallBlocked,
    ExchangeDenied,
    ExchangeIssued,
    ExchangePending,
    InactiveTokenPresented,
    Revoked,
)
from authority.revocations import events as revocation_events


def wire(services: Services) -> None:
    """Subscribe logs, metrics, containment, webhooks and the revocation feed to
    ``services.events``."""
    bus = services.events
    measured = services.metrics

    # Logs: first, so a decision has its line whatever a later handler raises.
    decision_log.wire(bus)

    # Metrics: counters, never in the way of an answer.
    def denied(event: ExchangeDenied) -> None:
        measured.exchange("denied", event.agent_id)
        measured.deny(event.reason)

    bus.subscribe(ExchangeDenied, denied)
    bus.subscribe(ExchangeIssued, lambda e: measured.exchange("issued", e.agent_id))
    bus.subscribe(ExchangePending, lambda e: measured.exchange("pending", e.agent_id))
    bus.subscribe(ApprovalRequested, lambda e: measured.approvals.labels("requested").inc())
    bus.subscribe(
        ApprovalRedeemed,
        lambda e: measured.approvals.labels("issued" if e.issued else "refused").inc(),
    )

    def contained(event: AgentContained) -> None:
        measured.time_to_contain.observe(event.seconds)
        measured.containments.inc()

    bus.subscribe(AgentContained, contained)

    # Containment: a security rule, so its failures reach the request as a direct call's
    # would (it logs and swallows the ones that must not, e.g. hot state unavailable).
    async def on_denial(event: ExchangeDenied) -> None:
        await containment.on_denial(services, event)

    async def on_inactive_token(event: InactiveTokenPresented) -> None:
        await containment.on_inactive_token(services, event)

    async def on_call_blocked(event: CallBlocked) -> None:
        await containment_calls.on_call_blocked(services, event)

    # The baselines: an issued tool joins its agent's; a step-up is recorded and counted.
    bus.subscribe(ExchangeIssued, lambda e: behaviour.on_issued(services, e))

    async def on_step_up(event: ApprovalRequested) -> None:
        await behaviour.on_step_up(services, event)

    bus.subscribe(ExchangeDenied, on_denial, propagate=True)
    bus.subscribe(ApprovalRequested, on_step_up, propagate=True)
    bus.subscribe(InactiveTokenPresented, on_inactive_token, propagate=True)
    bus.subscribe(CallBlocked, on_call_blocked, propagate=True)

    # Webhooks: queued at once; a notice never fails the request that caused it.
    def approval_requested(event: ApprovalRequested) -> None:
        webhooks.notify(
            services,
            event.owner_id,
            webhooks.APPROVAL_REQUESTED,
            {
                "approval_id": event.approval_id,
                "agent_id": event.agent_id,
                "delegation_id": event.delegation_id,
                "intent": event.intent,
                "tool": event.tool,
                "resource": event.resource,
                "action": event.action,
                "audience": event.audience,
                "reason": event.reason,
                "expires_at": event.expires_at,
                # JSON, as everything in the payload: shown as data, never as markup.
                "arguments": dict(event.arguments) if event.arguments is not None else None,
                "arguments_digest": event.arguments_digest,
                "explanation": event.explanation,
            },
        )

    def agent_contained(event: AgentContained) -> None:
        webhooks.notify(
            services,
            event.owner_id,
            webhooks.AGENT_QUARANTINED,
            {
                "agent_id": event.agent_id,
                "reason": event.reason,
                "trigger": event.trigger,
                "violations": round(event.violations),
                "window": event.window,
                "threshold": event.threshold,
                "containments": event.containments,
                "autonomy_level": event.autonomy_level,
                "autonomy_lowered": event.autonomy_lowered,
            },
        )

    bus.subscribe(ApprovalRequested, approval_requested)
    bus.subscribe(AgentContained, agent_contained)

    # The revocation feed: wake every instance's streams (never raises for hot state).
    async def revoked(event: Revoked) -> None:
        await revocation_events.publish(services, event.events)

    bus.subscribe(Revoked, revoked)
