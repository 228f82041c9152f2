"""Versioned schemas of ledger entries, one per (kind, version), in the manner of Rekor's types.

An entry's body is one flat JSON object: the envelope members ``kind``, ``version`` and
``time`` (Unix seconds) next to the record's own members. Its canonical form (sorted
keys, no insignificant whitespace, UTF-8, as written by ``canonical_json``) is the Merkle
tree leaf, so a body is only valid if it is byte-for-byte its own canonical form.

``append`` validates a record against these models before inserting it, and the offline
verifier validates every exported body against the same models: a programming error in
a caller fails loudly instead of writing an entry that no auditor could check.

A schema, once released, never changes: a new member or meaning is a new version, and
every old version stays registered here so that old entries keep verifying.

The models live by family (``grant_entries``, ``control_entries``, ``registry_entries``,
``gateway_entries``, ``policy_entries``, on the base in ``record``); this module is the
one registry of kinds and versions, and the canonical form every body is written and
checked in.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from .behaviour_entries import BehaviourStepUpV1, PromotionAcceptedV1, PromotionProposedV1
from .control_entries import (
    AgentContainedV1,
    AgentQuarantinedV1,
    AgentReleasedV1,
    AgentRetiredV1,
    AutonomyChangedV1,
    AutonomyChangedV2,
    DelegationCreatedV1,
    DelegationRevokedV1,
    KillSwitchV1,
    OwnerRetiredV1,
    TokenRevokedV1,
)
from .federation_entries import RegistryChangedV3
from .gateway_entries import GatewayCallV1
from .grant_entries import ApprovalDecidedV1, ApprovalDecidedV2, GrantV1, GrantV2, GrantV3
from .policy_entries import PolicyChangedV1
from .record import Record
from .registry_entries import KeyRotatedV1, RegistryChangedV1, RegistryChangedV2

# Members of the envelope: written by ``append``, never by a caller.
ENVELOPE = ("kind", "version", "time")


class MalformedEntry(ValueError):
    """A record or body that does not match the schema of its kind and version."""


# The registry of kinds: every released (kind, version), each family's in its module.
SCHEMAS: dict[tuple[str, int], type[Record]] = {
    (model.kind, model.version): model
    for model in (
        GrantV1,
        GrantV2,
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
        GatewayCallV1,
        RegistryChangedV2,
        GrantV3,
        PolicyChangedV1,
        RegistryChangedV3,
        BehaviourStepUpV1,
        PromotionProposedV1,
        PromotionAcceptedV1,
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
