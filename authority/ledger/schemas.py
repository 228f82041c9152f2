"""Versioned schemas of ledger entries, one per (kind, version), in the manner of Rekor's types.

An entry's body is one flat JSON object: the envelope members ``kind``, ``version`` and
``time`` (Unix seconds) next to the record's own members. Its canonical form (sorted
keys, no insignificant whitespace, UTF-8, as written by ``canonical_json``) is the Merkle
tree leaf, so a body is only valid if it is byte-for-byte its own canonical form.

``append`` validates a record against these models before inserting it, and the offline
verifier validates every exported body against the same models: a programming error in
a caller fails loudly instead of writing an entry that no auditor could check.

A schema, once released, never changes: a new member or meaning is a new version, and
every old version stays here so that old entries keep verifying.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Members of the envelope: written by ``append``, never by a caller.
ENVELOPE = ("kind", "version", "time")

# Column widths of storage/schema.py: a value longer than its column would fail the
# insert on PostgreSQL, so it fails validation first.
Id = Annotated[str, Field(min_length=1, max_length=40)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_.:-]+$")]
Actor = Annotated[str, Field(min_length=1, max_length=80)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Url = Annotated[str, Field(min_length=1, max_length=2048)]
Text = Annotated[str, Field(max_length=4096)]
Hash = Annotated[str, Field(min_length=1, max_length=64)]
Time = Annotated[int, Field(ge=0, lt=2**53)]
Level = Annotated[int, Field(ge=0, le=3)]


class MalformedEntry(ValueError):
    """A record or body that does not match the schema of its kind and version."""


class Record(BaseModel):
    """Base of every record: strict types (no coercion), no unknown members."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: ClassVar[str]
    version: ClassVar[int]


# --- grants (RFC 8693 exchanges: every decision) ------------------------------------------
class GrantV1(Record):
    """One decision on one exchange request; issued grants carry the jti and token hash."""

    kind: ClassVar[str] = "grant"
    version: ClassVar[int] = 1

    grant_id: Id
    decision: Literal["issued", "denied", "pending"]
    reason: Code | None = None  # stable deny / approval reason code
    agent_id: Id | None = None
    owner_id: Id | None = None
    delegation_id: Id | None = None
    tool: Name | None = None
    resource: Url | None = None
    action: Name | None = None
    audience: Url | None = None
    intent: Text | None = None
    jti: Hash | None = None
    token_hash: Hash | None = None  # never the token itself
    expires_at: Time | None = None
    cnf_jkt: Hash | None = None
    single_use: bool | None = None
    approval_id: Id | None = None

    @model_validator(mode="after")
    def _decision_fields(self) -> GrantV1:
        if self.decision == "issued":
            if self.jti is None or self.token_hash is None or self.expires_at is None:
                raise ValueError("an issued grant names its jti, token_hash and expires_at")
            if self.reason is not None:
                raise ValueError("an issued grant has no reason")
        else:
            if self.reason is None:
                raise ValueError("a denied or pending grant has a reason code")
            if self.jti is not None or self.token_hash is not None:
                raise ValueError("only an issued grant names a token")
        return self


# --- revocations and status changes ---------------------------------------------------------
class TokenRevokedV1(Record):
    """RFC 7009 revocation (or consumption-triggered revocation) of one token."""

    kind: ClassVar[str] = "token_revoked"
    version: ClassVar[int] = 1

    jti: Hash
    grant_id: Id | None = None
    agent_id: Id | None = None
    owner_id: Id | None = None
    delegation_id: Id | None = None
    tool: Name | None = None
    actor: Actor
    reason: Code | None = None


class ScopeItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    tool: Name
    resources: list[Url] = Field(max_length=256)
    actions: list[Name] = Field(max_length=64)


class DelegationCreatedV1(Record):
    kind: ClassVar[str] = "delegation_created"
    version: ClassVar[int] = 1

    delegation_id: Id
    owner_id: Id
    agent_id: Id
    intent: Text
    scope: list[ScopeItem] = Field(max_length=256)
    cnf_jkt: Hash
    expires_at: Time
    max_calls: Annotated[int, Field(ge=0)] | None = None
    rate_per_minute: Annotated[int, Field(ge=0)] | None = None
    actor: Actor


class DelegationRevokedV1(Record):
    """An owner's (or admin's) revocation; it cascades to every token under the delegation."""

    kind: ClassVar[str] = "delegation_revoked"
    version: ClassVar[int] = 1

    delegation_id: Id
    owner_id: Id
    agent_id: Id
    actor: Actor
    reason: Text | None = None


class AgentQuarantinedV1(Record):
    kind: ClassVar[str] = "agent_quarantined"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    actor: Actor
    reason: Text | None = None


class AgentReleasedV1(Record):
    kind: ClassVar[str] = "agent_released"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    actor: Actor
    reason: Text | None = None


class AgentRetiredV1(Record):
    """An agent retired for good: every token and delegation of it stops."""

    kind: ClassVar[str] = "agent_retired"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    actor: Actor


class OwnerRetiredV1(Record):
    """An owner retired for good: its API keys, agents' tokens and delegations stop."""

    kind: ClassVar[str] = "owner_retired"
    version: ClassVar[int] = 1

    owner_id: Id
    actor: Actor


class KillSwitchV1(Record):
    """An owner's stop of all their agents at once."""

    kind: ClassVar[str] = "kill_switch"
    version: ClassVar[int] = 1

    owner_id: Id
    actor: Actor
    reason: Text | None = None
    agent_count: Annotated[int, Field(ge=0)] | None = None


class ApprovalDecidedV1(Record):
    """A human decision on a call that needed approval (CIBA-style, poll mode)."""

    kind: ClassVar[str] = "approval_decided"
    version: ClassVar[int] = 1

    approval_id: Id
    decision: Literal["approved", "denied"]
    owner_id: Id
    agent_id: Id
    delegation_id: Id
    tool: Name | None = None
    resource: Url | None = None
    action: Name | None = None
    actor: Actor


class ApprovalDecidedV2(Record):
    """V1 and why: the owner's note, or the code of the rule that refused it at issue."""

    kind: ClassVar[str] = "approval_decided"
    version: ClassVar[int] = 2

    approval_id: Id
    decision: Literal["approved", "denied"]
    owner_id: Id
    agent_id: Id
    delegation_id: Id
    tool: Name | None = None
    resource: Url | None = None
    action: Name | None = None
    actor: Actor
    reason: Text | None = None


class AutonomyChangedV1(Record):
    kind: ClassVar[str] = "autonomy_changed"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    previous_level: Level
    level: Level
    actor: Actor


class AutonomyChangedV2(Record):
    """V1 and why: an owner's promotion, or the authority's demotion after containment."""

    kind: ClassVar[str] = "autonomy_changed"
    version: ClassVar[int] = 2

    agent_id: Id
    owner_id: Id
    previous_level: Level
    level: Level
    actor: Actor
    reason: Text | None = None


class AgentContainedV1(Record):
    """The figures behind an automatic quarantine (its agent_quarantined entry says it
    happened): how many violations in which window crossed which threshold, the one
    that crossed it, and how many containments the agent has had."""

    kind: ClassVar[str] = "agent_contained"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    actor: Actor
    violations: Annotated[int, Field(ge=0)]
    window: Annotated[int, Field(ge=1)]
    threshold: Annotated[int, Field(ge=1)]
    trigger: Code
    containments: Annotated[int, Field(ge=1)]
    autonomy_level: Level


class KeyRotatedV1(Record):
    """A signing key became active; ``previous_kid`` is the key it replaced."""

    kind: ClassVar[str] = "key_rotated"
    version: ClassVar[int] = 1

    purpose: Literal["token", "ledger"]
    kid: Annotated[str, Field(min_length=1, max_length=64)]
    alg: Annotated[str, Field(min_length=1, max_length=16)]
    previous_kid: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    actor: Actor


# --- the registries an exchange is decided on ------------------------------------------------
RegistryField = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
RegistryValue = bool | Annotated[int, Field(ge=-(2**53), lt=2**53)] | Text | list[Name] | None
# Names no recorded field may have: secrets and key material are never in the ledger (a
# key is recorded by its kid and RFC 7638 thumbprint, in ``keys``).
_SECRET_WORDS = ("secret", "hash", "password", "private", "jwk")


class KeyRef(BaseModel):
    """A public key named, never shown: its kid and its RFC 7638 SHA-256 thumbprint."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kid: Annotated[str, Field(min_length=1, max_length=128)]
    thumbprint: Hash


class RegistryChangedV1(Record):
    """A change to a tool, resource server, API key, agent's keys or owner's webhook.

    ``changes`` holds the fields set, by name, with their new values (null: cleared); a
    registered JWKS is ``keys``. Who made the change is ``actor`` (the API key's id).
    """

    kind: ClassVar[str] = "registry_changed"
    version: ClassVar[int] = 1

    object_type: Literal["tool", "resource_server", "api_key", "agent", "webhook"]
    object_id: Id
    change: Literal["created", "updated", "secret_rotated", "retired", "revoked", "deleted"]
    changes: dict[RegistryField, RegistryValue] = Field(default_factory=dict, max_length=32)
    keys: list[KeyRef] | None = Field(default=None, max_length=10)
    owner_id: Id | None = None
    agent_id: Id | None = None
    tool: Name | None = None
    actor: Actor

    @model_validator(mode="after")
    def _no_secrets(self) -> RegistryChangedV1:
        if any(word in name for name in self.changes for word in _SECRET_WORDS):
            raise ValueError("a registry change never records a secret or key material")
        return self


SCHEMAS: dict[tuple[str, int], type[Record]] = {
    (model.kind, model.version): model
    for model in (
        GrantV1,
        TokenRevokedV1,
        DelegationCreatedV1,
        DelegationRevokedV1,
        AgentQuarantinedV1,
        AgentReleasedV1,
        AgentRetiredV1,
        OwnerRetiredV1,
        KillSwitchV1,
        ApprovalDecidedV1,
        ApprovalDecidedV2,
        AutonomyChangedV1,
        AutonomyChangedV2,
        AgentContainedV1,
        KeyRotatedV1,
        RegistryChangedV1,
    )
}
KINDS: frozenset[str] = frozenset(kind for kind, _ in SCHEMAS)
# The latest version of each kind: what new entries are written with.
LATEST: dict[str, int] = {}
for _kind, _version in sorted(SCHEMAS):
    LATEST[_kind] = _version


def canonical_json(value: dict[str, Any]) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8: one byte string per record."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    return f"{where}: {first['msg']}"


def validate_record(kind: str, version: int, record: dict[str, Any]) -> Record:
    """The record as its schema's model; ``MalformedEntry`` if it does not match."""
    model = SCHEMAS.get((kind, version))
    if model is None:
        raise MalformedEntry(f"no schema for ledger entry kind {kind!r} version {version!r}")
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        raise MalformedEntry(f"{kind} v{version}: {_describe(exc)}") from None


def build_body(kind: str, version: int, time: int, record: dict[str, Any]) -> str:
    """The canonical body of a new entry, after validating ``record`` against its schema."""
    if isinstance(time, bool) or not isinstance(time, int) or not 0 <= time < 2**53:
        raise MalformedEntry("the entry time must be a non-negative integer")
    clash = [name for name in ENVELOPE if name in record]
    if clash:
        raise MalformedEntry(f"the record may not set envelope member {clash[0]!r}")
    validated = validate_record(kind, version, record)
    # Absent optional members are omitted rather than written as null, so that adding an
    # optional member in a later version does not change the bytes of the earlier ones.
    members = validated.model_dump(mode="json", exclude_none=True)
    return canonical_json({"kind": kind, "version": version, "time": time, **members})


def parse_body(body: str) -> tuple[dict[str, Any], Record]:
    """Check an entry body read back from an export: canonical, known kind, valid record.

    Returns the decoded object and its record; raises ``MalformedEntry`` with a reason.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedEntry("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedEntry("the body is not a JSON object")
    if canonical_json(value) != body:
        raise MalformedEntry("the body is not in canonical form")
    kind, version, time = (value.get(name) for name in ENVELOPE)
    if not isinstance(kind, str) or isinstance(version, bool) or not isinstance(version, int):
        raise MalformedEntry("the body has no valid kind and version")
    if isinstance(time, bool) or not isinstance(time, int) or not 0 <= time < 2**53:
        raise MalformedEntry("the body has no valid time")
    record = {k: v for k, v in value.items() if k not in ENVELOPE}
    validated = validate_record(kind, version, record)
    if validated.model_dump(mode="json", exclude_none=True) != record:
        raise MalformedEntry("the body writes an optional member as null")
    return value, validated
