"""Delegations: an owner's grant to one of their agents, and the credential that carries it.

The credential is a JWT signed by the authority (``typ: delegation+jwt``), bound to one
of the agent's registered keys by ``cnf.jkt`` (RFC 7800 §3.1 semantics): the agent
presents it as the ``subject_token`` of a token exchange together with a fresh
attestation signed by that very key, so a stolen credential is useless on its own.
The row in SQL is the truth: revoking it stops every exchange on the next request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from authority import protocol
from authority.context import Services
from authority.errors import InsufficientScope, InvalidRequest, NotFound
from authority.ledger.entries import Entry
from authority.management.auth import Principal
from authority.management.inputs import Body, Description
from authority.management.paging import Page, PageRequest, encode_cursor
from authority.management.records import valid_id
from authority.policy.checks import ScopeEntry
from authority.policy.patterns import wildcards
from authority.revocations.events import cascade_expiry, publish
from authority.secrets import new_id
from authority.storage.delegations import Delegation, Grantee, NewDelegation, ScopedTool
from authority.tokens.inbound import key_set

DELEGATION_TYP = protocol.DELEGATION_TYP
#: The binding (``cnf_jkt``) of a delegation to an agent without keys, which proves
#: itself by its workload identity (``grants.workload_auth``): never a key's RFC 7638
#: thumbprint (43 base64url characters). Its credential's ``cnf`` is
#: ``{"workload": <agent id>}``: usable only by that agent, with a platform token that
#: matches its identity rules, presented with the credential.
WORKLOAD_BINDING = "workload"
KIND = "delegations"
MAX_SCOPE_ENTRIES = 50
MAX_PATTERNS = 50

Pattern = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f\s]+$")
]
Action = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
]
ToolName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/-]+$")
]


class ScopeBody(Body):
    tool: ToolName
    resources: list[Pattern] = Field(min_length=1, max_length=MAX_PATTERNS)
    actions: list[Action] = Field(min_length=1, max_length=50)


class CreateDelegation(Body):
    agent_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    intent: Description
    scope: list[ScopeBody] = Field(min_length=1, max_length=MAX_SCOPE_ENTRIES)
    expires_in: int = Field(ge=60)
    max_calls: int | None = Field(None, ge=1, le=2**31 - 1)
    rate_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    key_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class RevokeDelegation(Body):
    reason: Description | None = None


@dataclass(frozen=True, slots=True)
class Created:
    delegation: dict[str, Any]
    credential: str


def scope_from_json(text: str) -> tuple[ScopeEntry, ...]:
    return tuple(
        ScopeEntry(e["tool"], tuple(e["resources"]), tuple(e["actions"])) for e in json.loads(text)
    )


def confirmation(cnf_jkt: str, agent_id: str) -> dict[str, str]:
    """The credential's ``cnf``: the key's thumbprint, or the agent's workload."""
    if cnf_jkt == WORKLOAD_BINDING:
        return {"workload": agent_id}
    return {"jkt": cnf_jkt}


def render(row: Delegation) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner_id": row.owner_id,
        "agent_id": row.agent_id,
        "intent": row.intent,
        "scope": json.loads(row.scope),
        "cnf": confirmation(row.cnf_jkt, row.agent_id),
        "expires_at": row.expires_at,
        "max_calls": row.max_calls,
        "rate_per_minute": row.rate_per_minute,
        "calls_used": row.calls_used,
        "status": row.status,
        "revoked_at": row.revoked_at,
        "revoked_reason": row.revoked_reason,
        "created_at": row.created_at,
    }


def _bound_key_thumbprint(jwks_json: str, key_id: str | None) -> str:
    keys = key_set(jwks_json).keys
    if not keys and key_id is None:  # an agent registered with identity rules only
        return WORKLOAD_BINDING
    if key_id is None:
        if len(keys) != 1:
            raise InvalidRequest("The agent has several keys: name one with key_id.")
        return keys[0].thumbprint()
    for key in keys:
        if key.kid == key_id:
            return key.thumbprint()
    raise InvalidRequest("The key_id field names no key of the agent.")


def _dedupe(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


async def create(services: Services, principal: Principal, body: CreateDelegation) -> Created:
    """Grant a delegation: only an owner, only to their own active agent."""
    if principal.role != "owner" or principal.owner_id is None:
        # A delegation is the owner's own act; an admin cannot grant on their behalf.
        raise InsufficientScope("Only an owner can delegate to their agents.")
    owner_id = principal.owner_id
    settings = services.settings
    if body.expires_in > settings.delegation_max_lifetime:
        raise InvalidRequest("The expires_in field exceeds the maximum delegation lifetime.")
    # Each wildcard adds a state to the matcher's automaton and each exchange reads its
    # resource through it: the cap keeps an owner's pattern cheap to match.
    cap = settings.delegation_max_pattern_wildcards
    if any(wildcards(p) > cap for entry in body.scope for p in entry.resources):
        raise InvalidRequest("A resources pattern has more wildcards than allowed.")
    tool_names = [entry.tool for entry in body.scope]
    if len(set(tool_names)) != len(tool_names):
        raise InvalidRequest("The scope field names a tool more than once.")
    now = services.now()
    delegation_id = new_id("dlg")
    expires_at = now + body.expires_in

    def grant(agent: Grantee, known: Mapping[str, ScopedTool]) -> NewDelegation:
        """The checks on what is stored while the delegation is written (the agent held
        against a kill switch), and the row and entry they allow."""
        if agent.status != "active":
            raise InvalidRequest("The agent is not active.")
        jkt = _bound_key_thumbprint(agent.jwks, body.key_id)
        for entry in body.scope:
            tool = known.get(entry.tool)
            if tool is None or tool.status != "active":
                raise InvalidRequest("The scope field names a tool that is not registered.")
            if not set(entry.actions) <= set(json.loads(tool.actions)):
                raise InvalidRequest("The scope field names an action the tool does not offer.")
        scope = [
            {
                "tool": e.tool,
                "resources": _dedupe(e.resources),
                "actions": _dedupe(e.actions),
            }
            for e in body.scope
        ]
        row = Delegation(
            id=delegation_id,
            owner_id=owner_id,
            agent_id=body.agent_id,
            intent=body.intent,
            scope=json.dumps(scope, separators=(",", ":")),
            cnf_jkt=jkt,
            expires_at=expires_at,
            max_calls=body.max_calls,
            rate_per_minute=body.rate_per_minute,
            calls_used=0,
            status="active",
            revoked_at=None,
            revoked_by=None,
            revoked_reason=None,
            created_at=now,
        )
        created: Entry = (
            "delegation_created",
            1,
            now,
            {
                "delegation_id": delegation_id,
                "owner_id": owner_id,
                "agent_id": body.agent_id,
                "intent": body.intent,
                "scope": scope,
                "cnf_jkt": jkt,
                "expires_at": expires_at,
                "max_calls": body.max_calls,
                "rate_per_minute": body.rate_per_minute,
                "actor": principal.key_id,
            },
        )
        return NewDelegation(row, created)

    row = await services.delegation_store.create(owner_id, body.agent_id, tool_names, grant)
    if row is None:
        raise NotFound("No such agent.")
    credential = services.keyring.sign(
        {
            "iss": settings.issuer,
            "aud": settings.issuer,
            "sub": owner_id,
            "client_id": body.agent_id,
            "jti": delegation_id,
            "iat": now,
            "exp": expires_at,
            "cnf": confirmation(row.cnf_jkt, row.agent_id),
        },
        typ=DELEGATION_TYP,
    )
    return Created(render(row), credential)


def _visible(principal: Principal) -> str | None:
    """Owners see only their own delegations (their id); admins and auditors see all."""
    return principal.owner_id if principal.role == "owner" else None


async def get(services: Services, principal: Principal, delegation_id: str) -> dict[str, Any]:
    if not valid_id(delegation_id):
        raise NotFound("No such delegation.")
    row = await services.delegation_store.get(delegation_id, _visible(principal))
    if row is None:
        raise NotFound("No such delegation.")
    return render(row)


async def list_page(
    services: Services, principal: Principal, request: PageRequest, agent_id: str | None
) -> Page[dict[str, Any]]:
    if agent_id is not None and not valid_id(agent_id):
        raise InvalidRequest(
            "The agent_id parameter must be an id: 1 to 40 letters, digits, _ or -."
        )
    rows, last = await services.delegation_store.page(
        owner_id=_visible(principal), agent_id=agent_id, limit=request.limit, after=request.after
    )
    next_cursor = None if last is None else encode_cursor(services, KIND, *last)
    return Page([render(r) for r in rows], next_cursor)


async def revoke(
    services: Services, principal: Principal, delegation_id: str, body: RevokeDelegation
) -> dict[str, Any]:
    """Revoke now. Every token issued under it is inactive from the next request on.

    The store's conditional UPDATE takes the row lock the exchange's own UPDATE takes, so
    once this returns no exchange under the delegation can succeed (see token_exchange).
    """
    if principal.role == "auditor":
        raise InsufficientScope("Auditors cannot revoke delegations.")
    if not valid_id(delegation_id):
        raise NotFound("No such delegation.")
    store = services.delegation_store
    visible = _visible(principal)
    # Whose it is never changes: the entry is written from what is stored now.
    found = await store.get(delegation_id, visible)
    if found is None:
        raise NotFound("No such delegation.")
    now = services.now()
    revoked = await store.revoke(
        delegation_id,
        visible,
        now=now,
        actor=principal.key_id,
        reason=body.reason,
        entry=revoked_entry(found, now=now, actor=principal.key_id, reason=body.reason),
        event_expires_at=cascade_expiry(services.settings, now),
    )
    if revoked is None:
        raise NotFound("No such delegation.")
    if revoked.event is not None:
        await publish(services, [revoked.event])
    return render(revoked.delegation)


def revoked_entry(delegation: Delegation, *, now: int, actor: str, reason: str | None) -> Entry:
    """The ``delegation_revoked`` ledger entry of an owner's (or admin's) revocation."""
    return (
        "delegation_revoked",
        1,
        now,
        {
            "delegation_id": delegation.id,
            "owner_id": delegation.owner_id,
            "agent_id": delegation.agent_id,
            "actor": actor,
            "reason": reason,
        },
    )
