"""The SQL schema: the source of truth. Alembic (authority/storage/migrations) owns its history.

Times are integer Unix seconds, the unit of JWT claims, identical on SQLite and
PostgreSQL. JSON documents are stored as text in canonical form.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from authority.storage.schema_types import ID, SERIAL, TIME
from authority.storage.schema_types import metadata as metadata

owners = Table(
    "owners",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("email", String(320), nullable=True),
    Column("status", String(16), nullable=False),  # active | suspended | retired
    # Where approval and containment notices go (approvals.webhooks), and the HMAC secret
    # they are signed with, sealed (AES-GCM) under the instance secret: never in clear.
    Column("webhook_url", String(2048), nullable=True),
    Column("webhook_secret", LargeBinary, nullable=True),
    Column("webhook_updated_at", TIME, nullable=True),
    Column("created_at", TIME, nullable=False),
    Column("updated_at", TIME, nullable=False),
    CheckConstraint("status IN ('active', 'suspended', 'retired')", name="status"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", ID, primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # admin | owner | auditor
    Column("owner_id", ID, ForeignKey("owners.id"), nullable=True),
    Column("label", String(200), nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("revoked_at", TIME, nullable=True),
    CheckConstraint("role IN ('admin', 'owner', 'auditor')", name="role"),
    CheckConstraint("(role = 'owner') = (owner_id IS NOT NULL)", name="owner_role"),
)

agents = Table(
    "agents",
    metadata,
    Column("id", ID, primary_key=True),
    Column("owner_id", ID, ForeignKey("owners.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("status", String(16), nullable=False),  # active | quarantined | retired
    Column("autonomy_level", Integer, nullable=False),
    Column("jwks", Text, nullable=False),
    Column("status_reason", Text, nullable=True),
    # The API key that quarantined the agent: an admin's quarantine is an admin's to lift.
    Column("quarantined_by", String(80), nullable=True),
    Column("created_at", TIME, nullable=False),
    Column("updated_at", TIME, nullable=False),
    # Its workload identity (grants.workload_auth): identity rules and whether both the
    # key and the platform token are required, JSON; NULL: the agent proves itself by key.
    Column("workload", Text, nullable=True),
    UniqueConstraint("owner_id", "name", name="uq_agents_owner_name"),
    CheckConstraint("status IN ('active', 'quarantined', 'retired')", name="status"),
    CheckConstraint("autonomy_level BETWEEN 0 AND 3", name="autonomy_level"),
)

trust_domains = Table(
    "trust_domains",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("preset", String(16), nullable=False),
    Column("issuer", String(2048), nullable=False),
    Column("audience", String(2048), nullable=False),
    Column("key_source", String(16), nullable=False),
    Column("key_location", String(2048), nullable=True),
    Column("static_jwks", Text, nullable=True),
    Column("claim_mapping", Text, nullable=False),
    Column("status", String(16), nullable=False),  # active | disabled
    Column("version", Integer, nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("updated_at", TIME, nullable=False),
    CheckConstraint("status IN ('active', 'disabled')", name="status"),
)

resource_servers = Table(
    "resource_servers",
    metadata,
    Column("id", ID, primary_key=True),  # also its OAuth client_id
    Column("name", String(200), nullable=False, unique=True),
    Column("audience", String(2048), nullable=False, unique=True),
    Column("auth_method", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=True),
    Column("jwks", Text, nullable=True),
    Column("status", String(16), nullable=False),  # active | retired
    Column("created_at", TIME, nullable=False),
    Column("updated_at", TIME, nullable=False),
    CheckConstraint(
        "auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt')",
        name="auth_method",
    ),
    CheckConstraint("status IN ('active', 'retired')", name="status"),
)

tools = Table(
    "tools",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("resource_server_id", ID, ForeignKey("resource_servers.id"), nullable=False),
    Column("actions", Text, nullable=False),  # JSON list of action names
    Column("read_actions", Text, nullable=False),  # JSON list: the subset that only reads
    Column("risk_tier", Integer, nullable=False),
    Column("approval_required", Boolean, nullable=False),
    Column("single_use", Boolean, nullable=False),
    Column("dpop_required", Boolean, nullable=False),
    Column("max_token_lifetime", Integer, nullable=True),
    Column("status", String(16), nullable=False),  # active | retired
    Column("created_at", TIME, nullable=False),
    Column("updated_at", TIME, nullable=False),
    CheckConstraint("risk_tier BETWEEN 0 AND 3", name="risk_tier"),
    CheckConstraint("status IN ('active', 'retired')", name="status"),
    # Introspection lists the caller's active tools on every request (its ``rs_tools``).
    Index("ix_tools_server_status", "resource_server_id", "status"),
)

delegations = Table(
    "delegations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("owner_id", ID, ForeignKey("owners.id"), nullable=False),
    Column("agent_id", ID, ForeignKey("agents.id"), nullable=False),
    Column("intent", Text, nullable=False),
    Column("scope", Text, nullable=False),  # JSON: [{tool, resources: [pattern], actions}]
    Column("cnf_jkt", String(64), nullable=False),  # the agent key it is bound to
    Column("expires_at", TIME, nullable=False),
    Column("max_calls", Integer, nullable=True),
    Column("rate_per_minute", Integer, nullable=True),
    Column("calls_used", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),  # active | revoked
    Column("revoked_at", TIME, nullable=True),
    Column("revoked_by", String(80), nullable=True),
    Column("revoked_reason", Text, nullable=True),
    Column("created_at", TIME, nullable=False),
    CheckConstraint("status IN ('active', 'revoked')", name="status"),
    Index("ix_delegations_agent", "agent_id"),
    Index("ix_delegations_owner", "owner_id"),
)

grants = Table(
    "grants",
    metadata,
    Column("id", ID, primary_key=True),
    Column("created_at", TIME, nullable=False),
    Column("decision", String(16), nullable=False),  # issued | denied | pending
    Column("reason", String(64), nullable=True),  # stable reason code when denied
    Column("agent_id", ID, nullable=True),
    Column("owner_id", ID, nullable=True),
    Column("delegation_id", ID, nullable=True),
    Column("tool", String(200), nullable=True),
    Column("resource", String(2048), nullable=True),
    Column("action", String(200), nullable=True),
    Column("intent", Text, nullable=True),
    Column("audience", String(2048), nullable=True),
    Column("jti", String(64), nullable=True, unique=True),
    Column("token_hash", String(64), nullable=True, unique=True),
    Column("expires_at", TIME, nullable=True),
    Column("cnf_jkt", String(64), nullable=True),
    Column("single_use", Boolean, nullable=False, default=False),
    Column("consumed_at", TIME, nullable=True),
    Column("revoked_at", TIME, nullable=True),
    CheckConstraint("decision IN ('issued', 'denied', 'pending')", name="decision"),
    Index("ix_grants_delegation", "delegation_id"),
    Index("ix_grants_agent_created", "agent_id", "created_at"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),  # token | ledger
    Column("alg", String(16), nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("private_key", LargeBinary, nullable=False),  # AES-GCM encrypted PKCS#8
    Column("status", String(16), nullable=False),  # next | active | retired
    Column("created_at", TIME, nullable=False),
    Column("activated_at", TIME, nullable=True),
    Column("retired_at", TIME, nullable=True),
    Column("publish_until", TIME, nullable=True),
    CheckConstraint("status IN ('next', 'active', 'retired')", name="status"),
    CheckConstraint("purpose IN ('token', 'ledger')", name="purpose"),
)

revocation_events = Table(
    "revocation_events",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("created_at", TIME, nullable=False),
    Column("kind", String(32), nullable=False),  # token | delegation | agent | owner | tool
    Column("jti", String(64), nullable=True),
    Column("delegation_id", ID, nullable=True),
    Column("agent_id", ID, nullable=True),
    Column("owner_id", ID, nullable=True),
    Column("expires_at", TIME, nullable=True),
    Column("tool", String(200), nullable=True),  # a retired tool's name (kind "tool")
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("created_at", TIME, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),  # canonical JSON of the versioned record
    Column("agent_id", ID, nullable=True),
    Column("owner_id", ID, nullable=True),
    Column("delegation_id", ID, nullable=True),
    Column("tool", String(200), nullable=True),
    Column("decision", String(16), nullable=True),
    Index("ix_ledger_entries_created", "created_at"),
    Index("ix_ledger_entries_agent", "agent_id"),
    Index("ix_ledger_entries_owner", "owner_id"),
    Index("ix_ledger_entries_delegation", "delegation_id"),
)

# Tree positions are assigned after commit by the sequencer, in an append-only table of
# their own, so appending an entry never waits on a global lock.
ledger_leaves = Table(
    "ledger_leaves",
    metadata,
    Column("leaf_index", BigInteger, primary_key=True, autoincrement=False),
    Column("entry_id", BigInteger, ForeignKey("ledger_entries.id"), nullable=False, unique=True),
    Column("leaf_hash", LargeBinary(32), nullable=False),
)

# Every complete interior node of the Merkle tree (level >= 1; level 0 is ledger_leaves),
# written once by the sequencer, so proofs and roots never re-read the leaves.
ledger_nodes = Table(
    "ledger_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("node_index", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("kid", String(64), nullable=False),
    Column("signed", Text, nullable=False),  # compact JWS over the checkpoint
)

approvals = Table(
    "approvals",
    metadata,
    # A keyed hash of the CIBA auth_req_id (approvals.requests.approval_id): the id the
    # agent polls with is never stored, like every other bearer secret.
    Column("id", ID, primary_key=True),
    Column("created_at", TIME, nullable=False),
    Column("expires_at", TIME, nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | denied | used
    Column("owner_id", ID, ForeignKey("owners.id"), nullable=False),
    Column("agent_id", ID, ForeignKey("agents.id"), nullable=False),
    Column("delegation_id", ID, ForeignKey("delegations.id"), nullable=False),
    Column("request", Text, nullable=False),  # JSON: the one call asked for
    Column("reason", String(64), nullable=False),  # why approval was needed
    Column("decided_at", TIME, nullable=True),
    Column("decided_by", String(80), nullable=True),
    Column("decision_reason", Text, nullable=True),  # the owner's note, or the refusal code
    Column("last_polled_at", TIME, nullable=True),
    # CIBA §7.3 "interval"; raised by 5 s on every slow_down (CIBA §11).
    Column("poll_interval", Integer, nullable=False),
    CheckConstraint("status IN ('pending', 'approved', 'denied', 'used')", name="status"),
    Index("ix_approvals_owner_created", "owner_id", "created_at"),
    Index("ix_approvals_agent_status", "agent_id", "status"),
)

# JWT ids already used (storage.replay): attestations, client assertions and DPoP proofs
# are single use, and this holds across Redis restarts because it lives here. The key is
# a SHA-256 of the namespaced jti, never the jti itself; rows go once the JWT has expired.
used_jtis = Table(
    "used_jtis",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("expires_at", TIME, nullable=False),
    Index("ix_used_jtis_expires_at", "expires_at"),
)

# The kill switch's cascade (management.controls): the owner is contained by one small
# commit, then every agent and delegation the kill covers is stopped in bounded batches.
# One row per kill: what it covers (the owner's objects created at or before
# ``contained_at``), how far it got (``phase``, ``cursor``: the last id handled) and when
# it finished. A row with ``finished_at`` NULL is resumed at start-up.
containment_cascades = Table(
    "containment_cascades",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("owner_id", ID, ForeignKey("owners.id"), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("reason", Text, nullable=False),
    Column("contained_at", TIME, nullable=False),
    Column("phase", String(16), nullable=False),  # agents | delegations | done
    Column("cursor", ID, nullable=True),
    Column("quarantined", Integer, nullable=False),
    Column("revoked", Integer, nullable=False),
    Column("finished_at", TIME, nullable=True),
    CheckConstraint("phase IN ('agents', 'delegations', 'done')", name="phase"),
    Index("ix_containment_cascades_owner_finished", "owner_id", "finished_at"),
)

# What a gateway recorded of each call it handled (authority.recordings): the heads of the
# request and response bodies, sealed (AES-GCM, authority.sealing) under a key of their
# own, never in clear; their digests are in the call's ``gateway_call`` ledger entry,
# written in the same transaction. Past retention the heads are deleted (set NULL and
# ``swept_at`` stamped); the row stays, so the call is known to have been recorded.
call_recordings = Table(
    "call_recordings",
    metadata,
    Column("id", ID, primary_key=True),  # the call id the ledger entry names
    Column("created_at", TIME, nullable=False),
    Column("server_id", ID, ForeignKey("resource_servers.id"), nullable=False),
    # The gateway's own id for the record: a resubmission (a retry) is the same call.
    Column("submission_id", String(64), nullable=False),
    Column("entry_id", BigInteger, ForeignKey("ledger_entries.id"), nullable=False, unique=True),
    Column("grant_id", ID, ForeignKey("grants.id"), nullable=True),
    Column("jti", String(64), nullable=True),
    Column("request_head", LargeBinary, nullable=True),  # sealed
    Column("response_head", LargeBinary, nullable=True),  # sealed
    Column("swept_at", TIME, nullable=True),
    UniqueConstraint("server_id", "submission_id", name="uq_call_recordings_submission"),
    Index("ix_call_recordings_grant_created", "grant_id", "created_at"),
    Index("ix_call_recordings_jti", "jti"),
    Index("ix_call_recordings_unswept", "swept_at", "created_at"),
)


# The console's tables (authority.console) and the behaviour tables (authority.behaviour),
# declared on the same metadata.
from authority.storage.schema_behaviour import behaviour_agents as behaviour_agents  # noqa: E402
from authority.storage.schema_behaviour import behaviour_calls as behaviour_calls  # noqa: E402
from authority.storage.schema_behaviour import behaviour_folds as behaviour_folds  # noqa: E402
from authority.storage.schema_behaviour import promotion_proposals as promotion_proposals  # noqa: E402
from authority.storage.schema_console import console_challenges as console_challenges  # noqa: E402
from authority.storage.schema_console import console_credentials as console_credentials  # noqa: E402
from authority.storage.schema_console import console_enrolments as console_enrolments  # noqa: E402
from authority.storage.schema_console import console_people as console_people  # noqa: E402
from authority.storage.schema_console import console_sessions as console_sessions  # noqa: E402

# The Cedar policy's versions (authority.policy.versions), declared on the same metadata.
from authority.storage.schema_policy import policy_activations as policy_activations  # noqa: E402
from authority.storage.schema_policy import policy_versions as policy_versions  # noqa: E402
