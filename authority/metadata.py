"""Authorization server metadata (RFC 8414) and the OpenID configuration (OpenID Discovery 1.0).

Both documents are built once from the settings at start-up. They name every endpoint and
every value the authority accepts, so that clients configure themselves from the issuer
alone, and every list is built from the constant the accepting code itself uses, so the
advertisement cannot drift from the behaviour.

``/.well-known/openid-configuration`` is the RFC 8414 document plus the three members
OpenID Discovery §3 requires that RFC 8414 does not (``subject_types_supported``,
``id_token_signing_alg_values_supported``; ``response_types_supported`` is in both), for
client libraries that discover only there (openid-client's default, RFC 8414 §5). The
authority is not an OpenID Provider: it issues no ID tokens and has no authorization
endpoint. Discovery §3 lists ``authorization_endpoint`` as REQUIRED; it is omitted all
the same, because naming an endpoint that does not exist would send clients to a 404,
and RFC 8414 §2 (which the OpenID document also is) requires it only "unless no grant
types are supported that use the authorization endpoint". Neither token exchange nor the
CIBA grant uses it.

Members the RFCs do not define carry the ``authority_`` prefix, so that a member
registered later in the IANA "OAuth Authorization Server Metadata" registry cannot clash
with them.
"""

from __future__ import annotations

from typing import Any, Final

from authority import protocol
from authority.protocol import (
    AGENT_ALGORITHMS,
    AUTHORIZATION_DETAILS_TYPE,
    DPOP_ALGORITHMS,
    GRANT_CIBA,
    GRANT_TOKEN_EXCHANGE,
    TOKEN_SIGNING_ALGORITHMS,
)
from authority.settings import Settings

__all__ = [
    "AGENT_AUTH_METHODS",
    "AUTHORIZATION_DETAILS_TYPE",
    "GRANT_CIBA",
    "GRANT_TOKEN_EXCHANGE",
    "GRANT_TYPES",
    "RESOURCE_SERVER_AUTH_METHODS",
    "RESPONSE_TYPES",
    "SCOPES",
    "SUBJECT_TYPES",
    "build_metadata",
    "build_openid_configuration",
]

#: Every grant type the token endpoint accepts (endpoints/token.py dispatches on these).
GRANT_TYPES: Final = (GRANT_TOKEN_EXCHANGE, GRANT_CIBA)
#: How an agent may authenticate at the token endpoint. ``private_key_jwt`` (RFC 7523
#: §2.2): the attestation sent as ``client_assertion``. ``none`` (RFC 7591 §2): the
#: attestation sent as ``actor_token`` with no client authentication at all, which RFC
#: 8693 §2.1 allows ("the client MAY ... be unauthenticated"); the agent is still proved
#: by its actor token. Client secrets, Basic or posted, are refused: agents have none.
AGENT_AUTH_METHODS: Final = ("private_key_jwt", "none")
#: Resource servers authenticate to introspect and revoke with any of these.
RESOURCE_SERVER_AUTH_METHODS: Final = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
)
#: RFC 8414 §2 ``response_types_supported`` is REQUIRED, but response types belong to the
#: authorization endpoint, which this server does not have, and §3.2 forbids an empty
#: array ("Claims with zero elements MUST be omitted"). ``none`` (OAuth 2.0 Multiple
#: Response Type Encoding Practices §4: nothing is returned) is the one value that is
#: true of a server that never issues anything at an authorization endpoint, and the
#: validators (authlib's, for one) refuse a document without the member.
RESPONSE_TYPES: Final = ("none",)
#: OpenID Discovery §3 ``subject_types_supported``: ``sub`` is the owner's id, the same
#: for every client (OpenID Core §8 "public").
SUBJECT_TYPES: Final = ("public",)
#: Authorisation is carried by authorization_details, not by scope values: none are defined.
SCOPES: Final[tuple[str, ...]] = ()


def build_metadata(settings: Settings) -> dict[str, Any]:
    """The RFC 8414 §2 document for ``settings.issuer``."""
    issuer = settings.issuer
    # JWT client authentication and attestations are checked against the one allowlist in
    # authority/protocol.py; RFC 8414 §2: "The value "none" MUST NOT be used."
    algorithms = list(AGENT_ALGORITHMS)

    def url(path: str) -> str:
        return issuer + path

    document: dict[str, Any] = {
        "issuer": issuer,
        # No authorization_endpoint: RFC 8414 §2 requires it only when a supported grant
        # type uses it, and neither token exchange nor CIBA polling does.
        "token_endpoint": url(protocol.TOKEN_PATH),
        "jwks_uri": url(protocol.JWKS_PATH),
        "scopes_supported": list(SCOPES),
        "response_types_supported": list(RESPONSE_TYPES),
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AGENT_AUTH_METHODS),
        # §2: MUST be present when private_key_jwt is listed.
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "service_documentation": settings.service_documentation,
        "revocation_endpoint": url(protocol.REVOCATION_PATH),
        "revocation_endpoint_auth_methods_supported": list(RESOURCE_SERVER_AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": algorithms,
        "introspection_endpoint": url(protocol.INTROSPECTION_PATH),
        "introspection_endpoint_auth_methods_supported": list(RESOURCE_SERVER_AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": algorithms,
        # RFC 9449 §5.1; the same tuple the proofs are checked against.
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        # RFC 9396 §10.
        "authorization_details_types_supported": [AUTHORIZATION_DETAILS_TYPE],
        # No CIBA discovery members (CIBA Core §4): a CIBA client starts at a
        # backchannel_authentication_endpoint, which this server does not have. An
        # approval is started by the token exchange itself, which answers with an
        # auth_req_id; the CIBA grant type above is only how that answer is polled
        # (docs/approvals.md). backchannel_token_delivery_modes_supported would tell a
        # CIBA client it can start one here, which it cannot.
        # The authority's own APIs.
        "authority_revocation_feed_endpoint": url(protocol.REVOCATION_FEED_PATH),
        "authority_ledger_entries_endpoint": url(protocol.LEDGER_ENTRIES_PATH),
        "authority_ledger_export_endpoint": url(protocol.LEDGER_EXPORT_PATH),
        "authority_ledger_checkpoint_endpoint": url(protocol.LEDGER_CHECKPOINT_PATH),
        "authority_ledger_checkpoints_endpoint": url(protocol.LEDGER_CHECKPOINTS_PATH),
        "authority_ledger_inclusion_proof_endpoint": url(protocol.LEDGER_INCLUSION_PROOF_PATH),
        "authority_ledger_consistency_proof_endpoint": url(protocol.LEDGER_CONSISTENCY_PROOF_PATH),
        "authority_ledger_keys_uri": url(protocol.LEDGER_KEYS_PATH),
        # The OpenAPI 3.1 document of every endpoint above and of the /v1 API.
        "authority_openapi_uri": url(protocol.OPENAPI_PATH),
    }
    # §3.2: "Claims with zero elements MUST be omitted"; unset optional members likewise.
    return {name: value for name, value in document.items() if value not in (None, [])}


def build_openid_configuration(settings: Settings) -> dict[str, Any]:
    """The OpenID Discovery §3 document: the RFC 8414 one plus the OpenID-required members."""
    return {
        **build_metadata(settings),
        "subject_types_supported": list(SUBJECT_TYPES),
        # Discovery §3: REQUIRED, and "The algorithm RS256 MUST be included". No ID token
        # is ever issued; the list is what every JWT the authority signs may be signed
        # with (its keys' algorithms), which is what generic clients read it for.
        "id_token_signing_alg_values_supported": list(TOKEN_SIGNING_ALGORITHMS),
    }
