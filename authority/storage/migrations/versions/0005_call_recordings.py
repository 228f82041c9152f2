"""call recordings: the sealed heads of every call a gateway recorded, next to its entry

Revision ID: 0005_call_recordings
Revises: 0004_revocation_event_tool
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_call_recordings"
down_revision: str | None = "0004_revocation_event_tool"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_recordings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("server_id", sa.String(length=40), nullable=False),
        sa.Column("submission_id", sa.String(length=64), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=True),
        sa.Column("jti", sa.String(length=64), nullable=True),
        sa.Column("request_head", sa.LargeBinary(), nullable=True),
        sa.Column("response_head", sa.LargeBinary(), nullable=True),
        sa.Column("swept_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["resource_servers.id"],
            name=op.f("fk_call_recordings_server_id_resource_servers"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_call_recordings_entry_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name=op.f("fk_call_recordings_grant_id_grants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_recordings")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_call_recordings_entry_id")),
        sa.UniqueConstraint("server_id", "submission_id", name="uq_call_recordings_submission"),
    )
    op.create_index(
        "ix_call_recordings_grant_created",
        "call_recordings",
        ["grant_id", "created_at"],
        unique=False,
    )
    op.create_index("ix_call_recordings_jti", "call_recordings", ["jti"], unique=False)
    op.create_index(
        "ix_call_recordings_unswept", "call_recordings", ["swept_at", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_call_recordings_unswept", table_name="call_recordings")
    op.drop_index("ix_call_recordings_jti", table_name="call_recordings")
    op.drop_index("ix_call_recordings_grant_created", table_name="call_recordings")
    op.drop_table("call_recordings")
