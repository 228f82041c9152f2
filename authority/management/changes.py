"""Ledger entries for changes to the registries that decide exchanges.

Tools (whether a call needs approval, is single-use, needs DPoP, how long its tokens
live), resource servers (the audiences and how they authenticate), API keys (who may
change any of it), agents' public keys (who may exchange) and owners' webhooks (where
approval requests go) decide what an exchange may get. Every change to them is a
``registry_changed`` entry (``authority.ledger.schemas.RegistryChangedV1``), built here as
a value (``entry``) and appended by the storage port in the transaction that makes the
change, so the change and its entry commit together or not at all, and a refused request
writes neither.

An entry names who (the API key id), which object, and what changed: the fields set and
their new values. Secrets never appear: not a client secret, API key or webhook secret
(nor their hashes), and a JWKS only as each key's kid and RFC 7638 thumbprint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from authority.ledger.entries import Entry
from authority.tokens.jwks import key_set

KIND = "registry_changed"
VERSION = 1
#: The version that also records trust domains and structured values (identity rules,
#: claim mappings): ``ledger.federation_entries.RegistryChangedV3``.
STRUCTURED = 3
#: The actor of changes made on the authority's own machine (``authority admin``).
OPERATOR = "operator"

ObjectType = Literal["tool", "resource_server", "api_key", "agent", "webhook", "trust_domain"]
Change = Literal["created", "updated", "secret_rotated", "retired", "revoked", "deleted"]


def key_refs(jwks: Mapping[str, Any]) -> list[dict[str, str]]:
    """The kid and RFC 7638 thumbprint of each key of a validated JWKS: nothing else."""
    return [{"kid": str(key.kid), "thumbprint": key.thumbprint()} for key in key_set(jwks).keys]


def differences(given: Mapping[str, Any], current: Mapping[Any, Any]) -> dict[str, Any]:
    """The fields of a PATCH whose value differs from what is stored."""
    return {name: value for name, value in given.items() if current.get(name) != value}


def entry(
    *,
    now: int,
    actor: str,
    object_type: ObjectType,
    object_id: str,
    change: Change,
    changes: Mapping[str, Any] | None = None,
    keys: list[dict[str, str]] | None = None,
    owner_id: str | None = None,
    agent_id: str | None = None,
    tool: str | None = None,
    version: int = VERSION,
) -> Entry:
    """The entry of one change, for the port that makes it (``authority.ledger.entries``)."""
    return (
        KIND,
        version,
        now,
        {
            "object_type": object_type,
            "object_id": object_id,
            "change": change,
            "changes": dict(changes or {}),
            "keys": keys,
            "owner_id": owner_id,
            "agent_id": agent_id,
            "tool": tool,
            "actor": actor,
        },
    )
