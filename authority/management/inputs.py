"""Request bodies of the management API: strict pydantic models and their error messages.

Bodies are validated strictly (no coercion of "1" to 1 or 1 to true) and unknown fields
are refused, so a typo never silently leaves a default in force. A validation failure
becomes ``InvalidRequest`` naming the field's full path and what the model allows there,
never the value sent (``field_errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from authority.errors import InvalidRequest
from authority.tokens.jwks import MAX_KEYS

from . import field_errors

M = TypeVar("M", bound="Body")

# Text that ends up in names, logs and consoles: no control characters (NUL would also be
# refused by PostgreSQL), no leading or trailing blanks.
_VISIBLE = r"[^\s\x00-\x1f\x7f]"
Name = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=200,
        pattern=rf"^{_VISIBLE}(?:[^\x00-\x1f\x7f]*{_VISIBLE})?$",
    ),
]
Label = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Description = Annotated[
    str, StringConstraints(max_length=2000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")
]
Email = Annotated[
    str,
    StringConstraints(max_length=320, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"),
]


#: A public JWK Set as the API takes it. Checked by ``tokens.jwks.validate_public_jwks``
#: (which names the problem); this is only what the OpenAPI document shows of it.
PublicJwks = Annotated[
    dict[str, Any],
    Field(
        description="A public JWK Set (RFC 7517): public keys only, each with a unique kid.",
        json_schema_extra={
            "required": ["keys"],
            "additionalProperties": False,
            "properties": {
                "keys": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_KEYS,
                    "items": {"type": "object", "required": ["kty", "kid"]},
                }
            },
        },
    ),
]


class Body(BaseModel):
    """A JSON request body: strict types, unknown fields refused, immutable once parsed."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def given(self) -> dict[str, Any]:
        """The fields the client sent (for PATCH: only these change)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def parse(model: type[M], data: Mapping[str, Any]) -> M:
    """Validate ``data`` against ``model``; raise ``InvalidRequest`` naming the fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(field_errors.describe(model, exc)) from None


def require_changes(body: Body) -> dict[str, Any]:
    """The fields a PATCH sets; an empty PATCH is refused so a typo is not a silent no-op."""
    changes = body.given()
    if not changes:
        raise InvalidRequest("The body names no field to change.")
    return changes
