"""The console's tables (``authority.console``), part of the one schema
(``authority.storage.schema``, which re-exports them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
)

from authority.storage.schema_types import ID, TIME, metadata

# --- the console (authority.console): people, their passkeys, sessions, ceremonies -------
# A person signs in with a passkey (WebAuthn) and acts as an admin, an auditor or one
# owner. Nothing here authenticates on its own: enrolment links, session cookies and
# challenges are stored as keyed hashes, passkeys as their public keys.
console_people = Table(
    "console_people",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # admin | owner | auditor
    Column("owner_id", ID, ForeignKey("owners.id"), nullable=True),
    Column("status", String(16), nullable=False),  # invited | active | retired
    Column("created_at", TIME, nullable=False),
    Column("updated_at", TIME, nullable=False),
    CheckConstraint("role IN ('admin', 'owner', 'auditor')", name="role"),
    CheckConstraint("(role = 'owner') = (owner_id IS NOT NULL)", name="owner_role"),
    CheckConstraint("status IN ('invited', 'active', 'retired')", name="status"),
)

console_credentials = Table(
    "console_credentials",
    metadata,
    Column("id", ID, primary_key=True),
    Column("credential_id", String(1400), nullable=False, unique=True),  # base64url
    Column("person_id", ID, ForeignKey("console_people.id"), nullable=False),
    Column("public_key", LargeBinary, nullable=False),  # COSE_Key
    Column("sign_count", BigInteger, nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("last_used_at", TIME, nullable=True),
    Index("ix_console_credentials_person", "person_id"),
)

console_enrolments = Table(
    "console_enrolments",
    metadata,
    Column("id", String(64), primary_key=True),  # keyed hash of the link's secret
    Column("person_id", ID, ForeignKey("console_people.id"), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("expires_at", TIME, nullable=False),
    Column("used_at", TIME, nullable=True),
    Index("ix_console_enrolments_person", "person_id"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # keyed hash of the cookie
    Column("person_id", ID, ForeignKey("console_people.id"), nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("last_seen_at", TIME, nullable=False),
    Column("expires_at", TIME, nullable=False),
    Index("ix_console_sessions_person", "person_id"),
)

# One row per WebAuthn challenge handed out, taken (deleted) by the one response to it.
console_challenges = Table(
    "console_challenges",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the challenge
    Column("purpose", String(16), nullable=False),  # enrol | sign_in | step_up
    Column("binding", String(64), nullable=False),  # keyed hash of the cookie it is for
    Column("person_id", ID, nullable=True),
    Column("subject", String(200), nullable=True),  # the enrolment, or the action confirmed
    Column("created_at", TIME, nullable=False),
    Column("expires_at", TIME, nullable=False),
    CheckConstraint("purpose IN ('enrol', 'sign_in', 'step_up')", name="purpose"),
    Index("ix_console_challenges_expires", "expires_at"),
)
