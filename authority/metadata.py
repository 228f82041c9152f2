"""Authorization server metadata (RFC 8414), also served as the OpenID configuration.

One document, built once from the settings at start-up, names every endpoint and every
value the authority accepts, so that clients configure themselves from the issuer alone.
The same document is served at ``/.well-known/openid-configuration`` for client libraries
that only look there (RFC 8414 §5); the authority is not an OpenID Provider and issues no
ID tokens, so the OpenID-only members (``subject_types_supported``,
``id_token_signing_alg_values_supported``) are absent.

Members the RFCs do not define carry the ``authority_`` prefix, so that a member
registered later in the IANA "OAuth Authorization Server Metadata" registry cannot clash
with them.
"""

from __future__ import annotations

from typing import Any, Final

from authority.endpoints import paths
from authority.settings import Settings
from authority.tokens.jose import AGENT_ALGORITHMS

#: RFC 8693 §2.1.
GRANT_TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
#: OpenID Connect CIBA §10.1: an agent polls for a token whose call awaits human approval.
GRANT_CIBA: Final = "urn:openid:params:grant-type:ciba"
#: RFC 9396 §2: the one authorization_details type; it names one tool call.
AUTHORIZATION_DETAILS_TYPE: Final = "tool_call"
#: Agents authenticate with their own keys (RFC 7523 §2.2 ``private_key_jwt``).
AGENT_AUTH_METHODS: Final = ("private_key_jwt",)
#: Resource servers authenticate to introspect and revoke with any of these.
RESOURCE_SERVER_AUTH_METHODS: Final = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
)
#: Authorisation is carried by authorization_details, not by scope values: none are defined.
SCOPES: Final[tuple[str, ...]] = ()


def build_metadata(settings: Settings) -> dict[str, Any]:
    """The RFC 8414 §2 document for ``settings.issuer``."""
    issuer = settings.issuer
    # JWT client authentication, attestations and DPoP proofs are all checked against the
    # one allowlist in tokens/jose.py; RFC 8414 §2: "The value "none" MUST NOT be used."
    algorithms = list(AGENT_ALGORITHMS)

    def url(path: str) -> str:
        return issuer + path

    document: dict[str, Any] = {
        "issuer": issuer,
        # No authorization_endpoint: RFC 8414 §2 requires it only when a supported grant
        # type uses it, and neither token exchange nor CIBA polling does.
        #
        # No response_types_supported. §2 lists it as REQUIRED, but response types exist
        # only at the authorization endpoint, which this server does not have, and §3.2
        # says "Claims with zero elements MUST be omitted from the response", which rules
        # out an empty array. ["none"] would claim an authorization endpoint that answers
        # without a code or token (OAuth 2.0 Multiple Response Type Encoding Practices
        # §4), which is false. Omitting it is what RFC 8414 erratum 7793 proposes and what
        # OpenID4VCI adopted for servers without an authorization endpoint.
        "token_endpoint": url(paths.TOKEN),
        "jwks_uri": url(paths.JWKS),
        "scopes_supported": list(SCOPES),
        "grant_types_supported": [GRANT_TOKEN_EXCHANGE, GRANT_CIBA],
        "token_endpoint_auth_methods_supported": list(AGENT_AUTH_METHODS),
        # §2: MUST be present when private_key_jwt is listed.
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "service_documentation": settings.service_documentation,
        "revocation_endpoint": url(paths.REVOCATION),
        "revocation_endpoint_auth_methods_supported": list(RESOURCE_SERVER_AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": algorithms,
        "introspection_endpoint": url(paths.INTROSPECTION),
        "introspection_endpoint_auth_methods_supported": list(RESOURCE_SERVER_AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": algorithms,
        # RFC 9449 §5.1.
        "dpop_signing_alg_values_supported": algorithms,
        # RFC 9396 §10.
        "authorization_details_types_supported": [AUTHORIZATION_DETAILS_TYPE],
        # CIBA §4: approvals are polled at the token endpoint. There is no
        # backchannel_authentication_endpoint: the exchange itself starts the approval.
        "backchannel_token_delivery_modes_supported": ["poll"],
        # The authority's own APIs.
        "authority_revocation_feed_endpoint": url(paths.REVOCATION_FEED),
        "authority_ledger_entries_endpoint": url(paths.LEDGER_ENTRIES),
        "authority_ledger_export_endpoint": url(paths.LEDGER_EXPORT),
        "authority_ledger_checkpoint_endpoint": url(paths.LEDGER_CHECKPOINT),
        "authority_ledger_checkpoints_endpoint": url(paths.LEDGER_CHECKPOINTS),
        "authority_ledger_inclusion_proof_endpoint": url(paths.LEDGER_INCLUSION_PROOF),
        "authority_ledger_consistency_proof_endpoint": url(paths.LEDGER_CONSISTENCY_PROOF),
        "authority_ledger_keys_uri": url(paths.LEDGER_KEYS),
    }
    # §3.2: "Claims with zero elements MUST be omitted"; unset optional members likewise.
    return {name: value for name, value in document.items() if value not in (None, [])}
