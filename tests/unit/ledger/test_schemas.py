from __future__ import annotations

from typing import Any

import orjson
import pytest

from authority.ledger.schemas import (
    KINDS,
    LATEST,
    MalformedEntry,
    build_body,
    canonical_json,
    parse_body,
)

from .records import EXAMPLES, grant


def test_every_kind_has_an_example() -> None:
    assert set(EXAMPLES) == KINDS


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_body_round_trips(kind: str) -> None:
    body = build_body(kind, LATEST[kind], 1_800_000_000, EXAMPLES[kind])
    value, record = parse_body(body)
    assert value["kind"] == kind
    assert value["time"] == 1_800_000_000
    assert record.model_dump(mode="json", exclude_none=True) == EXAMPLES[kind]


@pytest.mark.parametrize(
    ("kind", "version", "record"),
    [
        ("grant", 4, grant(1)),  # a version never released
        # The policy version is a member of grant v3 only, and a number.
        ("grant", 2, {**grant(1), "policy_version": 1}),
        ("grant", 3, {**grant(1), "policy_version": "1"}),
        ("grant", 3, {**grant(1), "policy_version": -1}),
        ("policy_changed", 1, {**EXAMPLES["policy_changed"], "digest": "abc"}),
        ("policy_changed", 1, {**EXAMPLES["policy_changed"], "change": "deleted"}),
        ("policy_changed", 1, {**EXAMPLES["policy_changed"], "text": "forbid(...);"}),
        # The workload of grant v3 is what the identity was, nothing else.
        ("grant", 2, {**grant(1), "workload": {"domain_id": "d", "issuer": "i", "subject": "s"}}),
        (
            "grant",
            3,
            {**grant(1), "workload": {"domain_id": "d", "issuer": "i", "subject": "s", "x": 1}},
        ),
        ("grant", 3, {**grant(1), "workload": {"domain_id": "d", "issuer": "i"}}),
        ("registry_changed", 2, {**EXAMPLES["registry_changed"], "object_type": "trust_domain"}),
        ("registry_changed", 3, {**EXAMPLES["registry_changed"], "changes": {"a": {"b": 1}}}),
        (
            "registry_changed",
            3,
            {**EXAMPLES["registry_changed"], "changes": {"identity_rules": [{"claims": {}}]}},
        ),
        ("no_such_kind", 1, {}),
        # The arguments' digest is a member of grant v2, not v1, and is only ever a digest.
        ("grant", 1, {**grant(1), "arguments_digest": "sha-256:" + "A" * 43}),
        ("grant", 2, {**grant(1), "arguments_digest": "sha-256:" + "A" * 42}),
        ("grant", 2, {**grant(1), "arguments_digest": '{"sql": "SELECT 1"}'}),
        ("grant", 2, {**grant(1), "arguments": {"sql": "SELECT 1"}}),
        ("grant", 1, {**grant(1), "extra": "member"}),
        ("grant", 1, {**grant(1), "grant_id": 7}),  # strict: no coercion
        ("grant", 1, {**grant(1), "decision": "maybe"}),
        ("grant", 1, {**grant(1), "agent_id": "x" * 41}),  # wider than its column
        ("grant", 1, {**grant(1, "issued"), "jti": None}),  # issued names its token
        ("grant", 1, {**grant(1), "jti": "j"}),  # a denial names no token
        ("grant", 1, {k: v for k, v in grant(1).items() if k != "reason"}),
        ("grant", 1, {**grant(1), "time": 5}),  # envelope member
        ("grant", 1, {**grant(1), "kind": "token_revoked"}),
        ("autonomy_changed", 1, {**EXAMPLES["autonomy_changed"], "level": 4}),
        ("autonomy_changed", 1, {**EXAMPLES["autonomy_changed"], "level": True}),
        ("delegation_created", 1, {**EXAMPLES["delegation_created"], "scope": [{"tool": "t"}]}),
        # A registry change never records a secret, a hash of one, or key material.
        ("registry_changed", 1, {**EXAMPLES["registry_changed"], "changes": {"secret": "s"}}),
        ("registry_changed", 1, {**EXAMPLES["registry_changed"], "changes": {"key_hash": "h"}}),
        ("registry_changed", 1, {**EXAMPLES["registry_changed"], "changes": {"jwks": "{}"}}),
        ("registry_changed", 1, {**EXAMPLES["registry_changed"], "changes": {"a": {"b": 1}}}),
        ("registry_changed", 1, {**EXAMPLES["registry_changed"], "object_type": "owner"}),
        ("registry_changed", 1, {**EXAMPLES["registry_changed"], "keys": [{"kid": "k"}]}),
    ],
)
def test_malformed_records_are_refused(kind: str, version: int, record: dict[str, Any]) -> None:
    with pytest.raises(MalformedEntry):
        build_body(kind, version, 1, record)


def test_grant_v2_carries_the_arguments_digest() -> None:
    record = {**grant(1, "issued"), "arguments_digest": "sha-256:" + "A" * 43}
    _, parsed = parse_body(build_body("grant", 2, 1, record))
    assert parsed.model_dump(mode="json", exclude_none=True) == record


@pytest.mark.parametrize("time", [-1, 1.5, True, 2**53])
def test_bad_times_are_refused(time: Any) -> None:
    with pytest.raises(MalformedEntry):
        build_body("grant", 1, time, grant(1))


def test_parse_refuses_non_canonical_bodies() -> None:
    body = build_body("grant", 1, 5, grant(1))
    value = orjson.loads(body)
    spaced = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    with pytest.raises(MalformedEntry, match="canonical"):
        parse_body(spaced)
    with pytest.raises(MalformedEntry, match="null"):
        parse_body(canonical_json({**value, "jti": None}))
    with pytest.raises(MalformedEntry):
        parse_body("[1]")
    with pytest.raises(MalformedEntry):
        parse_body("{")
    with pytest.raises(MalformedEntry, match="time"):
        parse_body(canonical_json({**value, "time": "5"}))
    with pytest.raises(MalformedEntry):
        parse_body(canonical_json({**value, "version": 9}))
