"""What the authority answers when it refuses, as exceptions: one class per error code of
RFC 6749 §5.2, RFC 6750 §3.1, RFC 8693 §2.2.2, RFC 8707 §2, RFC 9396 §5, RFC 9449 §7 and
OpenID CIBA §11, all under ``AuthorityClientError``.

Every exception keeps the RFC ``error`` string, its ``error_description`` and the HTTP
status, so code written against the base class (``exc.error == "invalid_scope"``) keeps
working while new code catches ``InvalidScope``. A code the SDK does not know becomes the
base class itself, never a crash. ``retryable`` marks the two answers that mean "not
now" rather than "no" (``temporarily_unavailable``, ``too_many_requests``): only those
are retried (``authority.sdk.retry``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = [
    "AccessDenied",
    "ApprovalPending",
    "AuthorityClientError",
    "AuthorizationPending",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidAuthorizationDetails",
    "InvalidClient",
    "InvalidDPoPProof",
    "InvalidGrant",
    "InvalidMetadata",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "ServerError",
    "SlowDown",
    "TemporarilyUnavailable",
    "TooManyRequests",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UnsupportedTokenType",
    "UseDPoPNonce",
    "error_from_response",
]


class AuthorityClientError(Exception):
    """The authority refused: ``error`` is the RFC error code, ``status`` the HTTP status.

    ``error_description`` (also ``description``) is the authority's human-readable text;
    ``retry_after`` the seconds its ``Retry-After`` asked for, when it sent one.
    """

    #: The RFC error code this class stands for (the base: any code).
    code: str = ""
    #: True for answers that mean "not now": retrying later may succeed.
    retryable: bool = False

    def __init__(
        self,
        error: str,
        description: str | None,
        status: int,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status
        self.retry_after = retry_after

    @property
    def error_description(self) -> str | None:
        return self.description


# --- RFC 6749 §5.2 --------------------------------------------------------------------------
class InvalidRequest(AuthorityClientError):
    code = "invalid_request"


class InvalidClient(AuthorityClientError):
    """The agent (or resource server) was not authenticated: key, kid, attestation."""

    code = "invalid_client"


class InvalidGrant(AuthorityClientError):
    """The delegation (or ``auth_req_id``) is invalid, expired, revoked or used up."""

    code = "invalid_grant"


class UnauthorizedClient(AuthorityClientError):
    code = "unauthorized_client"


class UnsupportedGrantType(AuthorityClientError):
    code = "unsupported_grant_type"


class InvalidScope(AuthorityClientError):
    """The call is outside what the delegation allows."""

    code = "invalid_scope"


# --- RFC 8693, RFC 8707, RFC 9396 -------------------------------------------------------------
class UnsupportedTokenType(AuthorityClientError):
    code = "unsupported_token_type"


class InvalidTarget(AuthorityClientError):
    code = "invalid_target"


class InvalidAuthorizationDetails(AuthorityClientError):
    code = "invalid_authorization_details"


# --- RFC 9449 (DPoP) ------------------------------------------------------------------------
class InvalidDPoPProof(AuthorityClientError):
    code = "invalid_dpop_proof"


class UseDPoPNonce(AuthorityClientError):
    code = "use_dpop_nonce"


# --- RFC 6750 §3.1 (resource servers, the gateway) ------------------------------------------
class InvalidToken(AuthorityClientError):
    code = "invalid_token"


class InsufficientScope(AuthorityClientError):
    code = "insufficient_scope"


# --- OpenID CIBA §11 (the owner's approval) -------------------------------------------------
class AuthorizationPending(AuthorityClientError):
    code = "authorization_pending"


class SlowDown(AuthorityClientError):
    code = "slow_down"


class AccessDenied(AuthorityClientError):
    """The owner (or a policy) refused the call."""

    code = "access_denied"


class ExpiredToken(AuthorityClientError):
    """The approval request expired before the owner decided."""

    code = "expired_token"


# --- not now --------------------------------------------------------------------------------
class TemporarilyUnavailable(AuthorityClientError):
    """The authority could not decide safely (it fails closed): retry shortly."""

    code = "temporarily_unavailable"
    retryable = True


class TooManyRequests(AuthorityClientError):
    """HTTP 429: a rate limit; ``retry_after`` says when to come back."""

    code = "too_many_requests"
    retryable = True


class ServerError(AuthorityClientError):
    code = "server_error"


# --- the client's own findings --------------------------------------------------------------
class InvalidMetadata(AuthorityClientError):
    """The RFC 8414 metadata is not the configured issuer's (§3.3), or unusable."""

    code = "invalid_metadata"


_BY_CODE: dict[str, type[AuthorityClientError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
        UnsupportedTokenType,
        InvalidTarget,
        InvalidAuthorizationDetails,
        InvalidDPoPProof,
        UseDPoPNonce,
        InvalidToken,
        InsufficientScope,
        AuthorizationPending,
        SlowDown,
        AccessDenied,
        ExpiredToken,
        TemporarilyUnavailable,
        TooManyRequests,
        ServerError,
        InvalidMetadata,
    )
}
#: What a status means when the body names no error (a proxy's page, an empty 503).
_BY_STATUS: dict[int, type[AuthorityClientError]] = {
    429: TooManyRequests,
    503: TemporarilyUnavailable,
}


def error_class(error: str, status: int) -> type[AuthorityClientError]:
    """The class for an RFC error code; a 503 or 429 is "not now" whatever its body says."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return _BY_CODE.get(error, AuthorityClientError)


def error_from_response(
    status: int, content: bytes, *, retry_after: float | None = None
) -> AuthorityClientError:
    """The exception for an error response (``status`` >= 400) and its body."""
    error = "http_error"
    description: str | None = f"HTTP {status}"
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("error"), str):
        error = str(body["error"])
        raw = body.get("error_description")
        description = raw if isinstance(raw, str) else None
    return error_class(error, status)(error, description, status, retry_after=retry_after)


class ApprovalPending(Exception):
    """The call needs the owner's approval (OpenID CIBA poll mode, §7.3).

    ``AgentClient.wait_for_approval(pending)`` polls until the owner decides.
    """

    def __init__(self, auth_req_id: str, expires_in: int, interval: int) -> None:
        super().__init__("the owner's approval is pending")
        self.auth_req_id = auth_req_id
        self.expires_in = expires_in
        self.interval = interval
