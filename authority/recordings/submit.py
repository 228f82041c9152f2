"""A gateway submits the record of one call: checked, entered in the ledger, heads sealed.

The gateway is a registered resource server and authenticates as one does at
introspection (``client_secret_basic``, or ``private_key_jwt`` with the assertion in the
JSON body: ``submission``). Then:

* the call's token is one the authority issued for the submitting server: the ``jti``
  names an issued grant whose audience is the caller's (RFC 7662 §4's rule for
  introspection, applied to what the server says it let through); anything else is
  ``invalid_grant`` and nothing is stored. A call without a token is a refused one;
* the agent, owner, delegation, tool, resource and action of the entry are the grant's,
  never the gateway's word; a record that names others is refused. A refused call with
  no token names no agent, owner or delegation; its tool, resource and action, if any,
  are what the gateway says was asked for;
* the ``gateway_call`` entry (digests and sizes of the bodies and of the heads, never a
  body) and the sealed heads are written in one transaction (``storage.recordings``):
  both or neither. A resubmission (same server, same ``submission_id``: a retry whose
  answer was lost) stores nothing and answers with the call id stored the first time;
* a ``blocked`` call, newly stored, is published (``CallBlocked``): containment counts
  it against the agent (``authority.containment_calls``).

The token's expiry and revocation are not checked: the call happened while the token
was good (the gateway checked it then), and its record may arrive later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authority import protocol
from authority.context import Services
from authority.domain_events import CallBlocked
from authority.errors import InvalidGrant, InvalidRequest
from authority.grants.client_auth import (
    AuthenticatedClient,
    Presented,
    authenticate_server,
    check_client,
    server_from_row,
)
from authority.ledger.entries import Entry
from authority.secrets import new_id
from authority.storage.recordings import NewRecording, SubmissionFacts

from .sealing import Side
from .submission import Checked, Head, checked, raw_jti

ENDPOINT = protocol.GATEWAY_CALLS_PATH
#: What an entry takes from the grant, and a record must not contradict.
_FROM_GRANT = ("agent_id", "owner_id", "delegation_id", "tool", "resource", "action")


@dataclass(frozen=True, slots=True)
class Submitted:
    call_id: str
    created: bool  # False: a resubmission of a record stored before


async def submit(
    services: Services, credentials: Presented, document: Mapping[str, Any]
) -> Submitted:
    now = services.now()
    settings = services.settings
    facts = await services.recording_store.lookup(credentials.client_id, raw_jti(document))
    client = authenticate_server(
        services,
        credentials,
        server_from_row(facts),
        endpoint_url=settings.issuer + ENDPOINT,
        now=now,
    )
    await check_client(services, client, "record", settings.recording_rate_per_minute, now)
    record = checked(document, settings.recording_max_body_bytes)
    call = record.call
    if call.jti is not None:
        _check_grant(client, facts, record)
    call_id = new_id("cal")
    stored = await services.recording_store.record(
        NewRecording(
            id=call_id,
            created_at=now,
            server_id=client.id,
            submission_id=call.submission_id,
            grant_id=facts.grant_id if call.jti is not None else None,
            jti=call.jti,
            request_head=_sealed(services, record.request, call_id, "request"),
            response_head=_sealed(services, record.response, call_id, "response"),
        ),
        _entry(client, facts, record, call_id, now),
    )
    if stored.created and call.outcome == "blocked" and call.jti is not None:
        await services.events.publish(
            CallBlocked(
                call_id=call_id,
                jti=call.jti,
                agent_id=str(facts.agent_id),
                owner_id=str(facts.owner_id),
                gateway=client.id,
                rule=str(call.blocked_by),
                now=now,
            )
        )
    return Submitted(stored.call_id, stored.created)


def _check_grant(client: AuthenticatedClient, facts: SubmissionFacts, record: Checked) -> None:
    if facts.grant_id is None or facts.decision != "issued":
        raise InvalidGrant("The call's jti names no token this authority issued.")
    # The server records only the calls of tokens meant for it, as it introspects only those.
    if client.audience is None or facts.grant_audience != client.audience:
        raise InvalidGrant("The call's token was not issued for this server.")
    for name in _FROM_GRANT:
        said = getattr(record.call, name)
        if said is not None and said != getattr(facts, name):
            raise InvalidRequest(f"The call's {name} is not its token's.")


def _sealed(services: Services, head: Head | None, call_id: str, side: Side) -> bytes | None:
    if head is None:
        return None
    return services.recording_sealer.seal(head.head, call_id=call_id, side=side)


def _entry(
    client: AuthenticatedClient, facts: SubmissionFacts, record: Checked, call_id: str, now: int
) -> Entry:
    call = record.call
    body: dict[str, Any] = {
        "call_id": call_id,
        "gateway": client.id,
        "upstream": call.upstream,
        "transport": call.kind,
        "method": call.method,
        "target": call.target,
        "outcome": call.outcome,
        "status": call.status,
        "started_at_ms": math.floor(call.started_at * 1000),
        "duration_us": round(call.duration_ms * 1000),
        "masked": dict(call.masked) or None,
        "blocked_by": call.blocked_by,
        "request": None if record.request is None else record.request.entry(),
        "response": None if record.response is None else record.response.entry(),
    }
    if call.jti is not None:
        body |= {"jti": call.jti, "grant_id": facts.grant_id}
        body |= {name: getattr(facts, name) for name in _FROM_GRANT}
    else:
        body |= {"tool": call.tool, "resource": call.resource, "action": call.action}
    return ("gateway_call", 1, now, body)
