"""tools found by their resource server

Introspection names the caller's active tools on every request; without an index
that lookup read the whole tools table.

Revision ID: 0010_tools_by_server
Revises: 0009_behaviour_baseline
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_tools_by_server"
down_revision: str | None = "0009_behaviour_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tools_server_status", "tools", ["resource_server_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_tools_server_status", table_name="tools")
