"""used JWT ids: single use of attestations, client assertions and DPoP proofs in SQL

Revision ID: 0002_used_jtis
Revises: 0001
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_used_jtis"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "used_jtis",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_used_jtis")),
    )
    op.create_index(op.f("ix_used_jtis_expires_at"), "used_jtis", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_used_jtis_expires_at"), table_name="used_jtis")
    op.drop_table("used_jtis")
