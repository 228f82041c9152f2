"""the console: people, their passkeys, enrolment links, sessions and challenges

Revision ID: 0006_console
Revises: 0005_call_recordings
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_console"
down_revision: str | None = "0005_call_recordings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_people",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "role IN ('admin', 'owner', 'auditor')", name=op.f("ck_console_people_role")
        ),
        sa.CheckConstraint(
            "(role = 'owner') = (owner_id IS NOT NULL)", name=op.f("ck_console_people_owner_role")
        ),
        sa.CheckConstraint(
            "status IN ('invited', 'active', 'retired')", name=op.f("ck_console_people_status")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_console_people_owner_id_owners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_people")),
        sa.UniqueConstraint("name", name=op.f("uq_console_people_name")),
    )
    op.create_table(
        "console_credentials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["console_people.id"],
            name=op.f("fk_console_credentials_person_id_console_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_credentials")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_console_credentials_credential_id")),
    )
    op.create_index(
        "ix_console_credentials_person", "console_credentials", ["person_id"], unique=False
    )
    op.create_table(
        "console_enrolments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["console_people.id"],
            name=op.f("fk_console_enrolments_person_id_console_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_enrolments")),
    )
    op.create_index(
        "ix_console_enrolments_person", "console_enrolments", ["person_id"], unique=False
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["console_people.id"],
            name=op.f("fk_console_sessions_person_id_console_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    op.create_index("ix_console_sessions_person", "console_sessions", ["person_id"], unique=False)
    op.create_table(
        "console_challenges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "purpose IN ('enrol', 'sign_in', 'step_up')",
            name=op.f("ck_console_challenges_purpose"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_challenges")),
    )
    op.create_index(
        "ix_console_challenges_expires", "console_challenges", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_console_challenges_expires", table_name="console_challenges")
    op.drop_table("console_challenges")
    op.drop_index("ix_console_sessions_person", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_index("ix_console_enrolments_person", table_name="console_enrolments")
    op.drop_table("console_enrolments")
    op.drop_index("ix_console_credentials_person", table_name="console_credentials")
    op.drop_table("console_credentials")
    op.drop_table("console_people")
