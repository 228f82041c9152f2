"""trust domains, and the workload identity agents may prove themselves with

Revision ID: 0007_trust_domains
Revises: 0006_console
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_trust_domains"
down_revision: str | None = "0006_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trust_domains",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("preset", sa.String(length=16), nullable=False),
        sa.Column("issuer", sa.String(length=2048), nullable=False),
        sa.Column("audience", sa.String(length=2048), nullable=False),
        sa.Column("key_source", sa.String(length=16), nullable=False),
        sa.Column("key_location", sa.String(length=2048), nullable=True),
        sa.Column("static_jwks", sa.Text(), nullable=True),
        sa.Column("claim_mapping", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'disabled')", name=op.f("ck_trust_domains_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_domains")),
        sa.UniqueConstraint("name", name=op.f("uq_trust_domains_name")),
    )
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("workload", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("workload")
    op.drop_table("trust_domains")
