"""The ``application/x-www-form-urlencoded`` bodies of the OAuth endpoints, as typed models.

RFC 6749 §3.2 (token, with RFC 8693 §2.1 token exchange and OpenID CIBA §10.1 polling),
RFC 7662 §2.1 (introspection), RFC 7009 §2.1 (revocation), and the revocation feed's
``POST``. The OpenAPI document describes each body from these models, and the endpoints
read their forms through them (``http.read_form(..., schema=...)``): a parameter the
endpoint reads but the model does not declare is a programming error, raised on the first
request that reaches it, so the document cannot miss a parameter the code uses.

The models are not what validates the values: each parameter's RFC error code
(``invalid_client``, ``invalid_target``, ``invalid_authorization_details``...) is decided
where it is read. They state the names, the fixed values and the bounds, so that a
client is told the same thing by the document and by the error.

RFC 6749 §3.2: "The authorization server MUST ignore unrecognized request parameters":
an unknown name is ignored, never refused.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from authority.protocol import (
    ACCESS_TOKEN_TYPE,
    GRANT_CIBA,
    GRANT_TOKEN_EXCHANGE,
    JWT_BEARER_ASSERTION,
    JWT_TOKEN_TYPE,
)

#: A JWT in compact serialisation (RFC 7515 §7.1).
Jwt = Annotated[
    str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]*){2}$")
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class FormBody(BaseModel):
    """A form body: the names it declares, and those it reads only to refuse them."""

    model_config = ConfigDict(extra="allow", frozen=True)

    #: Names that may repeat (RFC 8707 §2): parsed as a list, then held to what is allowed.
    REPEATABLE: ClassVar[frozenset[str]] = frozenset()
    #: Names read only to refuse them with the right error (not part of the document).
    REFUSED: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(cls.model_fields) | cls.REFUSED


class ClientAuthentication(FormBody):
    """How a resource server authenticates in the body (RFC 6749 §2.3.1, RFC 7523 §2.2);
    ``client_secret_basic`` goes in the ``Authorization`` header instead."""

    client_id: Text | None = Field(None, description="The resource server's client_id.")
    client_secret: Text | None = Field(
        None, description="client_secret_post: the secret issued at registration."
    )
    client_assertion_type: Literal[JWT_BEARER_ASSERTION] | None = Field(  # type: ignore[valid-type]
        None, description="private_key_jwt (RFC 7523 §2.2)."
    )
    client_assertion: Jwt | None = Field(
        None, description="private_key_jwt: a JWT signed with a key of the registered JWKS."
    )


class AgentAuthentication(FormBody):
    """How an agent proves itself: its attestation JWT, as ``actor_token`` (RFC 8693) or as
    ``client_assertion`` (RFC 7523 §2.2), never both; agents have no client secret."""

    REFUSED: ClassVar[frozenset[str]] = frozenset({"client_secret"})

    actor_token: Jwt | None = Field(
        None, description="The agent's attestation JWT, signed with a key of its JWKS."
    )
    actor_token_type: Literal[JWT_TOKEN_TYPE] | None = Field(  # type: ignore[valid-type]
        None, description="Required with actor_token."
    )
    client_assertion_type: Literal[JWT_BEARER_ASSERTION] | None = Field(  # type: ignore[valid-type]
        None, description="Required with client_assertion."
    )
    client_assertion: Jwt | None = Field(
        None, description="The attestation JWT, as a private_key_jwt client assertion."
    )
    client_id: Text | None = Field(None, description="The agent's id, if sent, must match.")


class TokenExchangeForm(AgentAuthentication):
    """RFC 8693 §2.1: the owner's delegation and the agent's attestation, for a token that
    allows one tool call (RFC 9396 ``authorization_details``) at one resource (RFC 8707)."""

    REPEATABLE: ClassVar[frozenset[str]] = frozenset({"resource", "audience"})
    REFUSED: ClassVar[frozenset[str]] = frozenset({"client_secret", "scope"})

    grant_type: Literal[GRANT_TOKEN_EXCHANGE]  # type: ignore[valid-type]
    subject_token: Jwt = Field(description="The delegation credential the owner was given.")
    subject_token_type: Literal[JWT_TOKEN_TYPE]  # type: ignore[valid-type]
    resource: Text = Field(
        description="Exactly one absolute http(s) URI without fragment: the tool's audience."
    )
    audience: Text | None = Field(None, description="If sent, equal to resource.")
    authorization_details: Text = Field(
        description='A JSON array of exactly one object {"type": "tool_call", "tool", '
        '"resource", "action"} and optionally "arguments" or "arguments_digest".'
    )
    requested_token_type: Literal[ACCESS_TOKEN_TYPE] | None = None  # type: ignore[valid-type]
    expires_in: int | None = Field(
        None, ge=1, le=999_999, description="A shorter lifetime, in seconds, than the default."
    )


class CibaTokenForm(AgentAuthentication):
    """OpenID CIBA §10.1: collect the token for a call the owner approved."""

    grant_type: Literal[GRANT_CIBA]  # type: ignore[valid-type]
    auth_req_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="The auth_req_id of the exchange's acknowledgement."
    )


class IntrospectionForm(ClientAuthentication):
    """RFC 7662 §2.1."""

    token: Text | None = Field(None, description="The access token to introspect.")
    token_type_hint: Text | None = Field(None, description="Ignored (RFC 7662 §2.1 allows it).")


class RevocationForm(ClientAuthentication):
    """RFC 7009 §2.1: by the resource server the token is for, or by the agent it was
    issued to (its attestation JWT as a ``private_key_jwt`` client assertion)."""

    token: Text | None = Field(None, description="The access token to revoke.")
    token_type_hint: Text | None = Field(None, description="Ignored (RFC 7009 §2.1 allows it).")


class FeedForm(ClientAuthentication):
    """The revocation feed's ``POST``: client authentication only."""


#: What the token endpoint reads, whichever the grant.
TOKEN_FORMS: tuple[type[FormBody], ...] = (TokenExchangeForm, CibaTokenForm)
