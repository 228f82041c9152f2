"""behaviour: the baseline of each agent's calls, and promotion proposals

Revision ID: 0009_behaviour_baseline
Revises: 0008_policy_versions
Create Date: 2026-12-01 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_behaviour_baseline"
down_revision: str | None = "0008_policy_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "behaviour_calls",
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("resource", sa.String(length=2048), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "agent_id", "tool", "action", "resource", name=op.f("pk_behaviour_calls")
        ),
    )
    op.create_table(
        "behaviour_agents",
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("active_minutes", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_behaviour_agents")),
    )
    op.create_table(
        "behaviour_folds",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("folded_until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_behaviour_folds")),
    )
    op.create_table(
        "promotion_proposals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("from_level", sa.Integer(), nullable=False),
        sa.Column("to_level", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_promotion_proposals_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_promotion_proposals_owner_id_owners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_proposals")),
    )
    op.create_index(
        "ix_promotion_proposals_agent_created",
        "promotion_proposals",
        ["agent_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_promotion_proposals_agent_created", table_name="promotion_proposals")
    op.drop_table("promotion_proposals")
    op.drop_table("behaviour_folds")
    op.drop_table("behaviour_agents")
    op.drop_table("behaviour_calls")
