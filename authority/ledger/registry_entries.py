"""Ledger records of the registries an exchange is decided on, and of signing keys.

One family because each records configuration rather than a decision: who changed which
tool, resource server, API key, agent's keys or webhook, and which key signs. None of
them ever records a secret or private key material.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .record import Actor, Hash, Id, Name, Record, Text


class KeyRotatedV1(Record):
    """A signing key became active; ``previous_kid`` is the key it replaced."""

    kind: ClassVar[str] = "key_rotated"
    version: ClassVar[int] = 1

    purpose: Literal["token", "ledger"]
    kid: Annotated[str, Field(min_length=1, max_length=64)]
    alg: Annotated[str, Field(min_length=1, max_length=16)]
    previous_kid: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    actor: Actor


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


class RegistryChangedV2(RegistryChangedV1):
    """V1, and the console's people and their passkeys: who may approve, kill and audit.

    A person is recorded by id, name, role and owner; a passkey by its own id and its
    person, never by its key; an enrolment link by when it expires.
    """

    version: ClassVar[int] = 2

    object_type: Literal[  # type: ignore[assignment]
        "tool", "resource_server", "api_key", "agent", "webhook", "person", "passkey"
    ]
