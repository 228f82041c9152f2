"""The behaviour tables (``authority.behaviour``), part of the one schema
(``authority.storage.schema``, which re-exports them)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from authority.storage.schema_types import ID, TIME, metadata

# --- behaviour: what each agent has called, folded from its issued grants -------------
# One row per agent and (tool, resource, action) it was issued tokens for, and one per
# agent with its totals; ``behaviour_folds`` holds how far the issued grants are folded in.
behaviour_calls = Table(
    "behaviour_calls",
    metadata,
    Column("agent_id", ID, primary_key=True),
    Column("tool", String(200), primary_key=True),
    Column("action", String(200), primary_key=True),
    Column("resource", String(2048), primary_key=True),
    Column("calls", Integer, nullable=False),
    Column("first_at", TIME, nullable=False),
    Column("last_at", TIME, nullable=False),
)

behaviour_agents = Table(
    "behaviour_agents",
    metadata,
    Column("agent_id", ID, primary_key=True),
    Column("calls", Integer, nullable=False),
    # Distinct minutes with at least one issued call: calls / active_minutes is its usual rate.
    Column("active_minutes", Integer, nullable=False),
    Column("first_at", TIME, nullable=False),
    Column("last_at", TIME, nullable=False),
)

behaviour_folds = Table(
    "behaviour_folds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("folded_until", TIME, nullable=False),  # grants created before it are folded in
)

# A proposal to raise an agent's autonomy level by one, made when the promotion rule holds.
promotion_proposals = Table(
    "promotion_proposals",
    metadata,
    Column("id", ID, primary_key=True),
    Column("agent_id", ID, ForeignKey("agents.id"), nullable=False),
    Column("owner_id", ID, ForeignKey("owners.id"), nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("status", String(16), nullable=False),  # proposed | accepted | stale
    Column("from_level", Integer, nullable=False),
    Column("to_level", Integer, nullable=False),
    Column("rule", Text, nullable=False),
    Column("record", Text, nullable=False),  # JSON: the figures the rule held on
    Column("decided_at", TIME, nullable=True),
    Column("decided_by", String(80), nullable=True),
    Index("ix_promotion_proposals_agent_created", "agent_id", "created_at"),
)
