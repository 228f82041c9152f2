"""One log line per decision, from the domain events (``authority.domain_events``).

Subscribed by ``authority.subscribers`` like every other side effect of a decision, so
the flows that decide never log their outcome themselves. Each line names ids and the
stable reason code (``policy.reasons``), never a token, a credential or a request's
arguments; the request id is added by the formatter (``authority.logs``).
"""

from __future__ import annotations

import logging

from authority.bus import EventBus
from authority.domain_events import (
    ApprovalRequested,
    ExchangeDenied,
    ExchangeIssued,
    Revoked,
    TokenIntrospected,
)

exchange_log = logging.getLogger("authority.exchange")
introspection_log = logging.getLogger("authority.introspection")
revocation_log = logging.getLogger("authority.revocation")


def issued(event: ExchangeIssued) -> None:
    exchange_log.info(
        "exchange issued",
        extra={
            "decision": "issued",
            "grant_id": event.grant_id,
            "agent_id": event.agent_id,
            "delegation_id": event.delegation_id,
        },
    )


def denied(event: ExchangeDenied) -> None:
    exchange_log.info(
        "exchange denied",
        extra={
            "decision": "denied",
            "reason": event.reason.value,
            "grant_id": event.grant_id,
            "agent_id": event.agent_id,
            "delegation_id": event.delegation_id,
        },
    )


def pending(event: ApprovalRequested) -> None:
    exchange_log.info(
        "exchange pending approval",
        extra={
            "decision": "pending",
            "reason": event.reason,
            "approval_id": event.approval_id,
            "agent_id": event.agent_id,
            "delegation_id": event.delegation_id,
        },
    )


def introspected(event: TokenIntrospected) -> None:
    introspection_log.info(
        "token introspected",
        extra={
            "active": event.active,
            "client_id": event.client_id,
            "grant_id": event.grant_id,
            "agent_id": event.agent_id,
        },
    )


def revoked(event: Revoked) -> None:
    for revocation in event.events:
        revocation_log.info(
            "revoked",
            extra={
                "kind": revocation.kind,
                "event_id": revocation.id,
                "jti": revocation.jti,
                "delegation_id": revocation.delegation_id,
                "agent_id": revocation.agent_id,
                "owner_id": revocation.owner_id,
                "tool": revocation.tool,
            },
        )


def wire(bus: EventBus) -> None:
    bus.subscribe(ExchangeIssued, issued)
    bus.subscribe(ExchangeDenied, denied)
    bus.subscribe(ApprovalRequested, pending)
    bus.subscribe(TokenIntrospected, introspected)
    bus.subscribe(Revoked, revoked)
