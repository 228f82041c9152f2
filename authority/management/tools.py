"""The tool registry: the vetted tools agents may ever get a token for.

Only an admin registers or changes a tool; every role may read the registry (owners need
it to write delegations). A tool's name and resource server are fixed once registered:
delegations name the tool, and tokens carry the resource server as their audience, so
changing either would silently change what existing delegations allow.

Every registration, change and retirement is a ``registry_changed`` ledger entry in the
same transaction (``authority.management.changes``): an admin cannot switch
``approval_required`` off and back on unseen. The rows are the tool registry port's
(``authority.storage.tools``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from pydantic import Field, StringConstraints

from authority.context import Services
from authority.errors import Conflict, InvalidRequest, NotFound
from authority.ledger.entries import Entry
from authority.revocations import events
from authority.secrets import new_id
from authority.storage.registry import NewEvent, Stale, Taken, Written
from authority.storage.tools import ToolRow

from . import changes as registry_changes
from . import paging, records
from .auth import ADMIN, READERS, Principal, require_role
from .inputs import Body, Description, require_changes
from .resource_servers import found as found_server

KIND = "tools"
NOT_FOUND = "No such tool."
NAME_TAKEN = "A tool with this name already exists."
RETIRED = "The tool is retired."
MAX_ACTIONS = 64

# Dotted lower-case segments: ``github.issues.create``.
ToolName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, pattern=r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$"
    ),
]
Action = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.:-]*$")
]
Actions = Annotated[list[Action], Field(max_length=MAX_ACTIONS)]
RiskTier = Annotated[int, Field(ge=0, le=3)]
Lifetime = Annotated[int, Field(ge=1)]


class ToolCreate(Body):
    name: ToolName
    description: Description | None = None
    resource_server_id: str
    actions: Actions
    read_actions: Actions = Field(default_factory=list)
    risk_tier: RiskTier
    approval_required: bool = False
    single_use: bool = False
    dpop_required: bool = False
    max_token_lifetime: Lifetime | None = None


class ToolUpdate(Body):
    # PATCH: only the fields sent change; a default here is never applied.
    description: Description | None = None
    actions: Actions = Field(default_factory=list)
    read_actions: Actions = Field(default_factory=list)
    risk_tier: RiskTier = 0
    approval_required: bool = False
    single_use: bool = False
    dpop_required: bool = False
    max_token_lifetime: Lifetime | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    id: str
    name: str
    description: str | None
    resource_server_id: str
    actions: list[str]
    read_actions: list[str]
    risk_tier: int
    approval_required: bool
    single_use: bool
    dpop_required: bool
    max_token_lifetime: int | None
    status: str
    created_at: int
    updated_at: int


def _tool(row: ToolRow) -> Tool:
    return Tool(
        id=row.id,
        name=row.name,
        description=row.description,
        resource_server_id=row.resource_server_id,
        actions=row.actions,
        read_actions=row.read_actions,
        risk_tier=row.risk_tier,
        approval_required=row.approval_required,
        single_use=row.single_use,
        dpop_required=row.dpop_required,
        max_token_lifetime=row.max_token_lifetime,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _found(services: Services, tool_id: str) -> ToolRow:
    row = await services.tool_store.get(tool_id)
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


def _check_actions(actions: list[str], read_actions: list[str]) -> None:
    if not actions:
        raise InvalidRequest("The actions field must name at least one action.")
    if len(set(actions)) != len(actions):
        raise InvalidRequest("The actions field repeats an action.")
    if len(set(read_actions)) != len(read_actions):
        raise InvalidRequest("The read_actions field repeats an action.")
    if not set(read_actions) <= set(actions):
        raise InvalidRequest("The read_actions must be a subset of the actions.")


def _check_lifetime(services: Services, lifetime: int | None) -> None:
    if lifetime is not None and lifetime > services.settings.access_token_max_lifetime:
        raise InvalidRequest("The max_token_lifetime exceeds the server's maximum.")


async def create(services: Services, principal: Principal, body: ToolCreate) -> Tool:
    require_role(principal, *ADMIN)
    _check_actions(body.actions, body.read_actions)
    _check_lifetime(services, body.max_token_lifetime)
    now = services.now()
    tool_id = new_id("tool")
    server = await found_server(services, body.resource_server_id, "No such resource server.")
    if server.status != "active":
        raise Conflict("The resource server is retired.")
    row = ToolRow(
        id=tool_id,
        name=body.name,
        description=body.description,
        resource_server_id=body.resource_server_id,
        actions=body.actions,
        read_actions=body.read_actions,
        risk_tier=body.risk_tier,
        approval_required=body.approval_required,
        single_use=body.single_use,
        dpop_required=body.dpop_required,
        max_token_lifetime=body.max_token_lifetime,
        status="active",
        created_at=now,
        updated_at=now,
    )
    entry = registry_changes.entry(
        now=now,
        actor=principal.key_id,
        object_type="tool",
        object_id=tool_id,
        change="created",
        changes=body.model_dump(),
        tool=body.name,
    )
    created = await services.tool_store.create(row, [entry])
    if isinstance(created, Taken):
        raise Conflict(NAME_TAKEN)
    return _tool(created)


async def get(services: Services, principal: Principal, tool_id: str) -> Tool:
    require_role(principal, *READERS)
    return _tool(await _found(services, tool_id))


async def list_tools(
    services: Services, principal: Principal, request: paging.PageRequest
) -> paging.Page[Tool]:
    require_role(principal, *READERS)
    rows = await services.tool_store.page(limit=request.limit, after=request.after)
    return paging.page_of(services, KIND, rows, _tool)


async def update_tool(
    services: Services, principal: Principal, tool_id: str, body: ToolUpdate
) -> Tool:
    require_role(principal, *ADMIN)
    changes = require_changes(body)
    _check_lifetime(services, changes.get("max_token_lifetime"))

    async def attempt() -> Written[ToolRow] | Stale:
        row = await _found(services, tool_id)
        if row.status == "retired":
            raise Conflict(RETIRED)
        new = replace(row, **changes, updated_at=services.now())
        # The pair is checked as it will be stored, whichever of the two was sent.
        _check_actions(new.actions, new.read_actions)
        changed = registry_changes.differences(
            changes, {name: getattr(row, name) for name in changes}
        )
        entries: list[Entry] = []
        if changed:
            entries.append(
                registry_changes.entry(
                    now=new.updated_at,
                    actor=principal.key_id,
                    object_type="tool",
                    object_id=tool_id,
                    change="updated",
                    changes=changed,
                    tool=row.name,
                )
            )
        written = await services.tool_store.replace(row, new, entries=entries)
        if isinstance(written, Taken):  # the name never changes: cannot happen
            raise Conflict(NAME_TAKEN)
        return written

    return _tool((await records.until_written(attempt)).row)


async def retire(services: Services, principal: Principal, tool_id: str) -> Tool:
    """Retire the tool: no new token is ever issued for it; retiring twice changes nothing."""
    require_role(principal, *ADMIN)

    async def attempt() -> Written[ToolRow] | Stale:
        row = await _found(services, tool_id)
        if row.status == "retired":
            return Written(row)
        now = services.now()
        entry = registry_changes.entry(
            now=now,
            actor=principal.key_id,
            object_type="tool",
            object_id=tool_id,
            change="retired",
            changes={"status": "retired"},
            tool=row.name,
        )
        written = await services.tool_store.replace(
            row,
            replace(row, status="retired", updated_at=now),
            entries=[entry],
            # Resource servers verifying locally learn it from the feed: the tokens
            # already issued for the tool are refused there too, not only at introspection.
            events=[
                NewEvent(
                    kind="tool",
                    time=now,
                    expires_at=events.cascade_expiry(services.settings, now),
                    tool=row.name,
                )
            ],
        )
        if isinstance(written, Taken):  # the name never changes: cannot happen
            raise Conflict(NOT_FOUND)
        return written

    written = await records.until_written(attempt)
    await events.publish(services, written.events)
    return _tool(written.row)
