"""The exchange port (``storage.exchange``) on ``Tables``.

Each method reads, decides what to write, validates every ledger entry, and only then
writes, with no ``await`` in between: atomic as the SQL transaction is, and a malformed
entry writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from authority.ledger.entries import entry_row
from authority.storage.exchange import (
    ApprovalFacts,
    ApprovalOutcome,
    ClosedApproval,
    Denial,
    ExchangeFacts,
    GrantWrite,
    NewApproval,
    NotRequested,
    NotSpent,
    Registered,
    Spend,
    SpendOutcome,
    SpendState,
    StoredAgent,
    StoredDelegation,
    StoredTool,
)
from authority.storage.replay import SingleUse

from . import Tables
from . import column as _get


def _grant_rows(write: GrantWrite) -> tuple[dict[str, Any], dict[str, Any]]:
    """The grant row and its validated ledger entry row."""
    row = {f.name: getattr(write.grant, f.name) for f in dataclasses.fields(write.grant)}
    row.update(consumed_at=None, revoked_at=None)
    kind, version, created_at, record = write.entry
    return row, entry_row(kind=kind, version=version, created_at=created_at, record=record)


def _as_decided(
    agent: dict[str, Any], tool: dict[str, Any] | None, server: dict[str, Any] | None, r: Registered
) -> bool:
    """``storage.sql.exchange._REGISTERED_AS_DECIDED`` on the rows."""
    return (
        tool is not None
        and server is not None
        and agent.get("jwks") == r.agent_jwks
        and agent.get("autonomy_level") == r.autonomy_level
        and tool.get("status") == "active"
        and tool.get("actions") == r.actions
        and tool.get("read_actions") == r.read_actions
        and tool.get("risk_tier") == r.risk_tier
        and bool(tool.get("approval_required")) == r.approval_required
        and bool(tool.get("single_use")) == r.single_use
        and bool(tool.get("dpop_required")) == r.dpop_required
        and tool.get("max_token_lifetime") == r.max_token_lifetime
        and server.get("status") == "active"
        and server.get("audience") == r.audience
    )


class MemoryExchangeStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def load(self, agent_id: str, delegation_id: str, tool: str) -> ExchangeFacts:
        tables = self._tables
        agent = tables.agents.get(agent_id)
        delegation = tables.delegations.get(delegation_id)
        tool_row = tables.tool_named(tool)
        return ExchangeFacts(
            agent=_stored_agent(agent, tables) if agent is not None else None,
            delegation=_stored_delegation(delegation) if delegation is not None else None,
            tool=_stored_tool(tool_row, tables) if tool_row is not None else None,
        )

    # --- the spend ------------------------------------------------------------------------
    def _rows(
        self, spend: Spend
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any, Any] | None:
        """The delegation, agent, owner, tool and server rows the spend reads, if the
        delegation, its agent (the one asking) and its owner exist."""
        tables = self._tables
        delegation = tables.delegations.get(spend.delegation_id)
        if delegation is None or delegation.get("agent_id") != spend.agent_id:
            return None
        agent = tables.agents.get(spend.agent_id)
        owner = tables.owners.get(delegation["owner_id"])
        if agent is None or owner is None:
            return None
        tool = tables.tool_named(spend.registered.tool)
        server = tables.resource_servers.get(tool["resource_server_id"]) if tool else None
        return delegation, agent, owner, tool, server

    def _spendable(self, spend: Spend) -> dict[str, Any] | None:
        """The delegation row to spend a call on, if every condition of the spend holds."""
        rows = self._rows(spend)
        if rows is None:
            return None
        delegation, agent, owner, tool, server = rows
        max_calls = delegation.get("max_calls")
        live = (
            delegation.get("status") == "active"
            and delegation["expires_at"] > spend.now
            and agent.get("status") == "active"
            and owner.get("status") == "active"
            and _as_decided(agent, tool, server, spend.registered)
            and (max_calls is None or delegation["calls_used"] < max_calls)
        )
        return delegation if live else None

    def _state(self, spend: Spend) -> SpendState | None:
        rows = self._rows(spend)
        if rows is None:
            return None
        delegation, agent, owner, tool, server = rows
        return SpendState(
            status=delegation["status"],
            expires_at=delegation["expires_at"],
            max_calls=delegation.get("max_calls"),
            calls_used=delegation["calls_used"],
            agent_status=agent["status"],
            owner_status=owner["status"],
            tool_status=_get(tool, "status"),
            server_status=_get(server, "status"),
            as_decided=_as_decided(agent, tool, server, spend.registered),
        )

    def _approved(self, approval_id: str, now: int) -> dict[str, Any] | None:
        row = self._tables.approvals.get(approval_id)
        if row is None or row["status"] != "approved" or row["expires_at"] <= now:
            return None
        return row

    async def spend(
        self,
        spend: Spend,
        issued: GrantWrite,
        uses: Sequence[SingleUse],
        refuse: Callable[[NotSpent], Denial],
        *,
        approval_id: str | None = None,
    ) -> SpendOutcome:
        tables = self._tables
        claimed = tables.unspent(uses)
        delegation = self._spendable(spend) if all(claimed) else None
        if delegation is not None:
            approval = None
            if approval_id is not None:
                approval = self._approved(approval_id, spend.now)
                if approval is None:
                    return SpendOutcome(claimed, approval_taken=True)
            grant, entry = _grant_rows(issued)
            tables.spend(uses, claimed)
            delegation["calls_used"] += 1
            if approval is not None:
                approval["status"] = "used"
            tables.grants[grant["id"]] = grant
            tables.ledger_entries.append(entry)
            return SpendOutcome(claimed)
        state = self._state(spend) if all(claimed) else None
        denial = refuse(NotSpent(claimed, state))
        write = self._denial(denial)
        tables.spend(uses, claimed)
        write()
        return SpendOutcome(claimed, denial)

    def _denial(self, denial: Denial) -> Callable[[], None]:
        """Validate ``denial``'s entries; the write, to run once nothing can fail."""
        tables = self._tables
        grant, entry = _grant_rows(denial.grant)
        closing = denial.approval
        decided = _entry(closing) if closing is not None else None

        def write() -> None:
            tables.grants[grant["id"]] = grant
            tables.ledger_entries.append(entry)
            if closing is not None and decided is not None:
                self._close(closing, decided)

        return write

    def _close(self, closing: ClosedApproval, entry: dict[str, Any]) -> None:
        row = self._tables.approvals.get(closing.approval_id)
        if row is None or row["status"] != "approved":
            return
        row.update(
            status="denied",
            decided_at=closing.decided_at,
            decided_by=closing.decided_by,
            decision_reason=closing.reason,
        )
        self._tables.ledger_entries.append(entry)

    async def deny(
        self, denial: GrantWrite, use: SingleUse | None, replayed: Callable[[], GrantWrite]
    ) -> bool | None:
        tables = self._tables
        uses = [use] if use is not None else []
        claimed = tables.unspent(uses)
        grant, entry = _grant_rows(denial if all(claimed) else replayed())
        tables.spend(uses, claimed)
        tables.grants[grant["id"]] = grant
        tables.ledger_entries.append(entry)
        return claimed[0] if claimed else None

    async def close_approval(self, denial: Denial) -> None:
        self._denial(denial)()

    # --- approvals --------------------------------------------------------------------------
    async def request_approval(
        self,
        approval: NewApproval,
        pending: GrantWrite,
        uses: Sequence[SingleUse],
        refuse: Callable[[NotRequested], GrantWrite],
        *,
        max_pending: int,
    ) -> ApprovalOutcome:
        tables = self._tables
        claimed = tables.unspent(uses)
        open_requests = [
            row
            for row in tables.approvals.values()
            if row["agent_id"] == approval.agent_id
            and row["status"] == "pending"
            and row["expires_at"] > approval.created_at
        ]
        limited = all(claimed) and len(open_requests) >= max_pending
        denial = refuse(NotRequested(claimed, limited)) if not all(claimed) or limited else None
        grant, entry = _grant_rows(denial if denial is not None else pending)
        tables.spend(uses, claimed)
        if denial is None:
            tables.approvals[approval.id] = {
                **{f.name: getattr(approval, f.name) for f in dataclasses.fields(approval)},
                "status": "pending",
                "decided_at": None,
                "decided_by": None,
                "decision_reason": None,
                "last_polled_at": None,
            }
        tables.grants[grant["id"]] = grant
        tables.ledger_entries.append(entry)
        return ApprovalOutcome(claimed, denial)

    async def approval(self, approval_id: str) -> ApprovalFacts | None:
        row = self._tables.approvals.get(approval_id)
        if row is None:
            return None
        return ApprovalFacts(
            id=row["id"],
            status=row["status"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            owner_id=row["owner_id"],
            agent_id=row["agent_id"],
            delegation_id=row["delegation_id"],
            request=row["request"],
            reason=row["reason"],
        )

    async def note_poll(self, approval_id: str, now: int, *, slow_down_step: int) -> bool:
        row = self._tables.approvals.get(approval_id)
        if row is None or row["status"] != "pending":
            return False
        last = row.get("last_polled_at")
        if last is None or last + row["poll_interval"] <= now:
            row["last_polled_at"] = now
            return True
        row["poll_interval"] += slow_down_step
        return False

    async def spend_uses(self, uses: Sequence[SingleUse]) -> tuple[bool, ...]:
        claimed = self._tables.unspent(uses)
        self._tables.spend(uses, claimed)
        return claimed


def _stored_agent(row: dict[str, Any], tables: Tables) -> StoredAgent:
    owner = tables.owners.get(row["owner_id"])
    return StoredAgent(
        id=row["id"],
        owner_id=row["owner_id"],
        status=row["status"],
        autonomy_level=row["autonomy_level"],
        jwks=row["jwks"],
        owner_status=_get(owner, "status"),
        workload=row.get("workload"),
    )


def _stored_delegation(row: dict[str, Any]) -> StoredDelegation:
    return StoredDelegation(
        id=row["id"],
        owner_id=row["owner_id"],
        agent_id=row["agent_id"],
        status=row["status"],
        expires_at=row["expires_at"],
        scope=row["scope"],
        intent=row["intent"],
        max_calls=row.get("max_calls"),
        rate_per_minute=row.get("rate_per_minute"),
        calls_used=row["calls_used"],
        cnf_jkt=row["cnf_jkt"],
    )


def _stored_tool(row: dict[str, Any], tables: Tables) -> StoredTool:
    server = tables.resource_servers.get(row["resource_server_id"])
    return StoredTool(
        name=row["name"],
        status=row["status"],
        resource_server_id=row["resource_server_id"],
        actions=row["actions"],
        read_actions=row["read_actions"],
        risk_tier=row["risk_tier"],
        approval_required=bool(row["approval_required"]),
        single_use=bool(row["single_use"]),
        dpop_required=bool(row["dpop_required"]),
        max_token_lifetime=row.get("max_token_lifetime"),
        audience=_get(server, "audience"),
        server_status=_get(server, "status"),
    )


def _entry(closing: ClosedApproval) -> dict[str, Any]:
    kind, version, created_at, record = closing.entry
    return entry_row(kind=kind, version=version, created_at=created_at, record=record)
