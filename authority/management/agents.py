"""Agents: the programs that act for an owner, known by their public keys (a JWKS), by
the workload identity of the platform they run on (identity rules, ``agent_workload``),
or by both.

An owner registers and edits its own agents; an admin any owner's. Status is not
editable here: quarantine and release are decisions with their own endpoints and ledger
entries, so an owner cannot lift a quarantine by editing its agent. Retiring is final.

Registering an agent and changing its name, description or keys is a
``registry_changed`` ledger entry in the same transaction
(``authority.management.changes``), the keys named by kid and thumbprint; a change of
autonomy is its own ``autonomy_changed`` entry. The rows are the agents port's
(``authority.storage.agents``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic import Field

from authority.context import Services
from authority.errors import Conflict, InvalidRequest, NotFound
from authority.ledger.entries import Entry
from authority.revocations import events
from authority.secrets import new_id
from authority.storage.agents import AgentRow
from authority.storage.registry import NewEvent, Stale, Taken, Written
from authority.tokens.jwks import validate_public_jwks

from . import agent_workload, autonomy, owners, paging, records
from . import changes as registry_changes
from .auth import READERS, WRITERS, Principal, require_role, sees_all
from .inputs import Body, Description, Name, PublicJwks, require_changes

KIND = "agents"
NOT_FOUND = "No such agent."
NAME_TAKEN = "The owner already has an agent with this name."
RETIRED = "The agent is retired."

AutonomyLevel = autonomy.Level


class AgentCreate(Body):
    name: Name
    description: Description | None = None
    # Required for an admin; an owner's agents are its own (naming another owner: 404).
    owner_id: str | None = None
    autonomy_level: AutonomyLevel = Field(
        0,
        description="0 to 3. At 0 (the default) only a tool's read_actions need no "
        "approval: every other call awaits the owner's; from 1 up, tools whose risk_tier "
        "is at most the level need none (unless approval_required). Change it with "
        "POST /v1/agents/{agent_id}/autonomy.",
    )
    jwks: PublicJwks | None = None
    identity_rules: agent_workload.IdentityRules = Field(
        default_factory=list,
        description="The workload identities the agent may prove itself with: any one "
        "rule matching its platform token will do.",
    )
    require_key_and_workload: bool = Field(
        False,
        description="Both an attestation by one of its keys and a matching platform "
        "token on every exchange. Required when both jwks and identity_rules are given.",
    )


class AgentUpdate(Body):
    # PATCH: only the fields sent change; a default here is never applied.
    name: Name = ""
    description: Description | None = None
    autonomy_level: AutonomyLevel = 0
    jwks: PublicJwks = Field(default_factory=dict)
    identity_rules: agent_workload.IdentityRules = Field(default_factory=list)
    require_key_and_workload: bool = False


#: What a workload-only agent stores as its keys: none (no attestation verifies).
NO_KEYS: dict[str, Any] = {"keys": []}


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    owner_id: str
    name: str
    description: str | None
    status: str
    status_reason: str | None
    autonomy_level: int
    jwks: dict[str, Any] | None  # None: no keys, the agent proves itself by workload
    identity_rules: list[dict[str, Any]]
    require_key_and_workload: bool
    created_at: int
    updated_at: int


def _agent(row: AgentRow) -> Agent:
    rules, both = agent_workload.view(row.workload)
    return Agent(
        id=row.id,
        owner_id=row.owner_id,
        name=row.name,
        description=row.description,
        status=row.status,
        status_reason=row.status_reason,
        autonomy_level=row.autonomy_level,
        jwks=row.jwks if row.jwks.get("keys") else None,
        identity_rules=rules,
        require_key_and_workload=both,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def scope(principal: Principal) -> str | None:
    """The visibility rule: an owner sees its own agents only (None: every owner's)."""
    return None if sees_all(principal) else principal.owner_id


async def found(services: Services, agent_id: str, seen_by: str | None) -> AgentRow:
    """The agent if it exists and is ``seen_by``'s (None: anyone's); else 404."""
    row = await services.agent_store.get(agent_id, owner_id=seen_by)
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


def _open(row: AgentRow) -> AgentRow:
    if row.status == "retired":
        raise Conflict(RETIRED)
    return row


async def create(services: Services, principal: Principal, body: AgentCreate) -> Agent:
    require_role(principal, *WRITERS)
    if principal.role == "owner":
        owner_id = body.owner_id or principal.owner_id
    elif body.owner_id is None:
        raise InvalidRequest("The owner_id field is required.")
    else:
        owner_id = body.owner_id
    if owner_id is None:  # an owner key always names its owner (schema constraint)
        raise InvalidRequest("The owner_id field is required.")
    jwks = validate_public_jwks(body.jwks) if body.jwks is not None else NO_KEYS
    workload = agent_workload.stored(body.identity_rules, body.require_key_and_workload)
    agent_workload.check_shape(body.jwks is not None, workload, body.require_key_and_workload)
    await agent_workload.check_domains(services, workload)
    now = services.now()
    agent_id = new_id("agt")
    await owners.check_open(services, principal, owner_id)
    row = AgentRow(
        id=agent_id,
        owner_id=owner_id,
        name=body.name,
        description=body.description,
        status="active",
        status_reason=None,
        quarantined_by=None,
        autonomy_level=body.autonomy_level,
        jwks=jwks,
        created_at=now,
        updated_at=now,
        workload=workload,
    )
    entry = registry_changes.entry(
        now=now,
        actor=principal.key_id,
        object_type="agent",
        object_id=agent_id,
        change="created",
        changes={
            "name": body.name,
            "description": body.description,
            "autonomy_level": body.autonomy_level,
            # An agent of keys only is recorded as it always was (version 1).
            **(_workload_changes(workload) if workload is not None else {}),
        },
        keys=registry_changes.key_refs(jwks) if body.jwks is not None else None,
        owner_id=owner_id,
        agent_id=agent_id,
        version=registry_changes.STRUCTURED if workload is not None else registry_changes.VERSION,
    )
    created = await services.agent_store.create(row, [entry])
    if isinstance(created, Taken):
        raise Conflict(NAME_TAKEN)
    return _agent(created)


async def get(services: Services, principal: Principal, agent_id: str) -> Agent:
    require_role(principal, *READERS)
    return _agent(await found(services, agent_id, scope(principal)))


async def list_agents(
    services: Services, principal: Principal, request: paging.PageRequest
) -> paging.Page[Agent]:
    require_role(principal, *READERS)
    rows = await services.agent_store.page(
        limit=request.limit, after=request.after, owner_id=scope(principal)
    )
    return paging.page_of(services, KIND, rows, _agent)


async def update_agent(
    services: Services, principal: Principal, agent_id: str, body: AgentUpdate
) -> Agent:
    require_role(principal, *WRITERS)
    changes = require_changes(body)
    keys: list[dict[str, str]] | None = None
    if "jwks" in changes:
        changes["jwks"] = validate_public_jwks(changes["jwks"])
        keys = registry_changes.key_refs(changes["jwks"])
    rules = changes.pop("identity_rules", None)
    both = changes.pop("require_key_and_workload", None)

    async def attempt() -> Written[AgentRow] | Stale:
        row = _open(await found(services, agent_id, scope(principal)))
        now = services.now()
        new = replace(row, **changes, updated_at=now)
        if rules is not None or both is not None or "jwks" in changes:
            new = await _new_workload(services, row, new, rules, both)
        entries: list[Entry] = []
        if new.autonomy_level != row.autonomy_level:
            # Every change of autonomy is in the ledger, whichever route made it.
            entries.append(
                autonomy.change_entry(
                    agent_id=agent_id,
                    owner_id=row.owner_id,
                    previous=row.autonomy_level,
                    level=new.autonomy_level,
                    actor=principal.key_id,
                    reason=None,
                    now=now,
                )
            )
        # Autonomy has its entry above; the name, description and keys have this one.
        changed = registry_changes.differences(
            {name: changes[name] for name in ("name", "description") if name in changes},
            {"name": row.name, "description": row.description},
        )
        new_keys = None if records.same_json(new.jwks, row.jwks) else keys
        if not records.same_json(new.workload, row.workload):
            changed.update(_workload_changes(new.workload))
        if changed or new_keys is not None:
            entries.append(
                registry_changes.entry(
                    now=now,
                    actor=principal.key_id,
                    object_type="agent",
                    object_id=agent_id,
                    change="updated",
                    changes=changed,
                    keys=new_keys,
                    owner_id=row.owner_id,
                    agent_id=agent_id,
                    version=registry_changes.STRUCTURED
                    if "identity_rules" in changed
                    else registry_changes.VERSION,
                )
            )
        written = await services.agent_store.replace(row, new, entries=entries)
        if isinstance(written, Taken):
            raise Conflict(NAME_TAKEN)
        return written

    return _agent((await records.until_written(attempt)).row)


def _workload_changes(workload: dict[str, Any] | None) -> dict[str, Any]:
    """The ledger's record of an agent's identity rules: all of them, as stored."""
    rules, both = agent_workload.view(workload)
    return {"identity_rules": rules, "require_key_and_workload": both}


async def _new_workload(
    services: Services,
    row: AgentRow,
    new: AgentRow,
    rules: list[agent_workload.IdentityRuleBody] | None,
    both: bool | None,
) -> AgentRow:
    """``new`` with the identity rules and flag a PATCH sent, checked as a whole."""
    current_rules, current_both = agent_workload.view(row.workload)
    if rules is None:
        rules = [agent_workload.IdentityRuleBody.model_validate(r) for r in current_rules]
    require_both = current_both if both is None else both
    workload = agent_workload.stored(rules, require_both)
    agent_workload.check_shape(bool(new.jwks.get("keys")), workload, require_both)
    await agent_workload.check_domains(services, workload)
    return replace(new, workload=workload)


async def retire(services: Services, principal: Principal, agent_id: str) -> Agent:
    """Retire the agent for good; retiring twice changes nothing."""
    require_role(principal, *WRITERS)

    async def attempt() -> Written[AgentRow] | Stale:
        row = await found(services, agent_id, scope(principal))
        if row.status == "retired":
            return Written(row)
        now = services.now()
        record = {"agent_id": agent_id, "owner_id": row.owner_id, "actor": principal.key_id}
        written = await services.agent_store.replace(
            row,
            replace(row, status="retired", updated_at=now),
            entries=[("agent_retired", 1, now, record)],
            # Introspection refuses its tokens at once (it reads the agent's status); the
            # feed tells resource servers that verify locally.
            events=[
                NewEvent(
                    kind="agent",
                    time=now,
                    expires_at=events.cascade_expiry(services.settings, now),
                    agent_id=agent_id,
                    owner_id=row.owner_id,
                )
            ],
        )
        if isinstance(written, Taken):  # the name is unchanged: cannot happen
            raise Conflict(NOT_FOUND)
        return written

    written = await records.until_written(attempt)
    if written.events:
        await events.publish(services, written.events)
    return _agent(written.row)


async def set_autonomy_level(
    services: Services, principal: Principal, agent_id: str, body: autonomy.AutonomyBody
) -> Agent:
    """Set the level; setting the level it has changes nothing and records nothing."""
    require_role(principal, *WRITERS)

    async def attempt() -> Written[AgentRow] | Stale:
        row = _open(await found(services, agent_id, scope(principal)))
        if row.autonomy_level == body.level:
            return Written(row)
        now = services.now()
        entry = autonomy.change_entry(
            agent_id=agent_id,
            owner_id=row.owner_id,
            previous=row.autonomy_level,
            level=body.level,
            actor=principal.key_id,
            reason=body.reason,
            now=now,
        )
        written = await services.agent_store.replace(
            row, replace(row, autonomy_level=body.level, updated_at=now), entries=[entry]
        )
        if isinstance(written, Taken):  # the name is unchanged: cannot happen
            raise Conflict(NOT_FOUND)
        return written

    return _agent((await records.until_written(attempt)).row)
