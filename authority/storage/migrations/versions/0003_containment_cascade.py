"""containment cascades: the kill switch contains in one commit, then stops objects in batches

Revision ID: 0003_containment_cascade
Revises: 0002_used_jtis
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_containment_cascade"
down_revision: str | None = "0002_used_jtis"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "containment_cascades",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("contained_at", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("cursor", sa.String(length=40), nullable=True),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("revoked", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "phase IN ('agents', 'delegations', 'done')",
            name=op.f("ck_containment_cascades_phase"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
            name=op.f("fk_containment_cascades_owner_id_owners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_containment_cascades")),
    )
    op.create_index(
        "ix_containment_cascades_owner_finished",
        "containment_cascades",
        ["owner_id", "finished_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_containment_cascades_owner_finished", table_name="containment_cascades")
    op.drop_table("containment_cascades")
