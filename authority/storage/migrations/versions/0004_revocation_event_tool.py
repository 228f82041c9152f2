"""revocation events name a retired tool

Revision ID: 0004_revocation_event_tool
Revises: 0003_containment_cascade
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_revocation_event_tool"
down_revision: str | None = "0003_containment_cascade"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("revocation_events") as batch:
        batch.add_column(sa.Column("tool", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("revocation_events") as batch:
        batch.drop_column("tool")
