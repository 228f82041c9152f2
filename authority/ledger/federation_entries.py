"""Ledger records of workload identity: trust domains, agents' identity rules, and the
workload an exchange was decided for.

``RegistryChangedV3`` is V2 that also records trust domains and structured values (an
agent's identity rules, a domain's claim mapping): a change names its fields with their
new values, which for these are JSON objects. The workload an exchange was decided for is
``grant_entries.GrantV3.workload``: the domain, the subject and the claims its rules
matched.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .grant_entries import ClaimName, ClaimValue
from .record import Id
from .registry_entries import RegistryChangedV2, RegistryField, RegistryValue


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RuleRecord(_Strict):
    """One identity rule as registered: a domain and patterns."""

    domain_id: Id
    subject: ClaimValue | None = None
    claims: dict[ClaimName, ClaimValue] = Field(default_factory=dict, max_length=20)


StructuredValue = (
    RegistryValue
    | Annotated[dict[ClaimName, ClaimName], Field(max_length=50)]
    | Annotated[list[RuleRecord], Field(max_length=20)]
)


class RegistryChangedV3(RegistryChangedV2):
    """V2, trust domains, and the structured values of identity rules and mappings."""

    version: ClassVar[int] = 3

    object_type: Literal[  # type: ignore[assignment]
        "tool",
        "resource_server",
        "api_key",
        "agent",
        "webhook",
        "person",
        "passkey",
        "trust_domain",
    ]
    changes: dict[RegistryField, StructuredValue] = Field(  # type: ignore[assignment]
        default_factory=dict, max_length=32
    )
