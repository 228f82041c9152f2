"""The Cedar policy's tables (``authority.policy.versions``), part of the one schema
(``authority.storage.schema``, which re-exports them)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table, Text

from authority.storage.schema_types import SERIAL, TIME, metadata

# --- the Cedar policy: immutable versions and the log of which one is active ---------------
# A version is written once and never changed; which one decides exchanges is the last
# row of policy_activations (a rollback appends a row naming an older version).
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
    Column("digest", String(64), nullable=False),  # sha-256: + base64url of the text
    Column("author", String(80), nullable=False),  # an API key's id, or "file"
    Column("comment", String(1000), nullable=True),
    Column("created_at", TIME, nullable=False),
)

policy_activations = Table(
    "policy_activations",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("version", Integer, ForeignKey("policy_versions.version"), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("activated_at", TIME, nullable=False),
)
