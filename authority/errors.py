"""Error codes of RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 8693 §2.2.2,
RFC 8707 §2, RFC 9396 §5, RFC 9449 §7 and CIBA §11, and their one renderer.

Descriptions are fixed, client-facing sentences: they name the problem, never echo the
input. Detail for operators goes to the server log.
"""

from __future__ import annotations

from typing import ClassVar


class AuthorityError(Exception):
    """An error with an RFC error code, an HTTP status and a client-safe description."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 500
    default_description: ClassVar[str] = "The request could not be processed."

    def __init__(self, description: str | None = None, *, headers: dict[str, str] | None = None):
        self.description = description or self.default_description
        self.headers = headers or {}
        super().__init__(self.description)

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


# --- RFC 6749 §5.2 ----------------------------------------------------------------------
class InvalidRequest(AuthorityError):
    error = "invalid_request"
    status_code = 400
    default_description = "The request is missing a parameter or is malformed."


class InvalidClient(AuthorityError):
    """400: the client authenticated in the body (``client_secret_post``, a client
    assertion) or not at all. RFC 6749 §5.2: "The authorization server responds with an
    HTTP 400 (Bad Request) status code (unless specified otherwise)"; the 401 is only for
    a client that used the Authorization header (``InvalidClientChallenge``)."""

    error = "invalid_client"
    status_code = 400
    default_description = "Client authentication failed."


class InvalidClientChallenge(InvalidClient):
    """401 with a ``Basic`` challenge, for a client that used the Authorization header.

    RFC 6749 §5.2: "If the client attempted to authenticate via the "Authorization"
    request header field, the authorization server MUST respond with an HTTP 401
    (Unauthorized) status code and include the WWW-Authenticate response header field
    matching the authentication scheme used by the client" (Basic is the one scheme the
    authority accepts there; RFC 9110 §15.5.2 wants a challenge on every 401)."""

    status_code = 401

    def __init__(self, description: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(
            description, headers=headers or {"WWW-Authenticate": 'Basic realm="authority"'}
        )


class InvalidGrant(AuthorityError):
    error = "invalid_grant"
    status_code = 400
    default_description = "The grant is invalid, expired, revoked or not for this client."


class UnauthorizedClient(AuthorityError):
    error = "unauthorized_client"
    status_code = 400
    default_description = "The client may not use this grant type."


class UnsupportedGrantType(AuthorityError):
    error = "unsupported_grant_type"
    status_code = 400
    default_description = "The grant type is not supported."


class InvalidScope(AuthorityError):
    error = "invalid_scope"
    status_code = 400
    default_description = "The requested scope is invalid or exceeds what was delegated."


# --- RFC 8707 §2 / RFC 8693 §2.2.2 ------------------------------------------------------
class InvalidTarget(AuthorityError):
    error = "invalid_target"
    status_code = 400
    default_description = "The requested resource is invalid or not allowed."


# --- RFC 9396 §5 -------------------------------------------------------------------------
class InvalidAuthorizationDetails(AuthorityError):
    error = "invalid_authorization_details"
    status_code = 400
    default_description = "The authorization_details are invalid."


# --- RFC 9449 §7 -------------------------------------------------------------------------
class InvalidDPoPProof(AuthorityError):
    error = "invalid_dpop_proof"
    status_code = 400
    default_description = "The DPoP proof is invalid."


class UseDPoPNonce(AuthorityError):
    error = "use_dpop_nonce"
    status_code = 400
    default_description = "The authorization server requires a DPoP nonce."


# --- RFC 7009 §2.2.1 ---------------------------------------------------------------------
class UnsupportedTokenType(AuthorityError):
    error = "unsupported_token_type"
    status_code = 400
    default_description = "Revocation of this token type is not supported."


# --- RFC 6750 §3.1 (management API bearer credentials) ----------------------------------
class InvalidToken(AuthorityError):
    error = "invalid_token"
    status_code = 401
    default_description = "The access credential is missing, invalid or revoked."


class InsufficientScope(AuthorityError):
    error = "insufficient_scope"
    status_code = 403
    default_description = "The credential does not allow this operation."


# --- OpenID CIBA §11 (poll mode) --------------------------------------------------------
class AuthorizationPending(AuthorityError):
    error = "authorization_pending"
    status_code = 400
    default_description = "The approval is still pending."


class SlowDown(AuthorityError):
    error = "slow_down"
    status_code = 400
    default_description = "Polling too fast; increase the interval by at least 5 seconds."


class AccessDenied(AuthorityError):
    error = "access_denied"
    status_code = 400
    default_description = "The owner denied the request."


class ExpiredToken(AuthorityError):
    error = "expired_token"
    status_code = 400
    default_description = "The approval request has expired."


# --- service state ------------------------------------------------------------------------
class TemporarilyUnavailable(AuthorityError):
    """Revocation, replay or ledger state could not be read or written: fail closed."""

    error = "temporarily_unavailable"
    status_code = 503
    default_description = "The service is temporarily unavailable; retry shortly."

    def __init__(self, description: str | None = None, *, retry_after: int = 1):
        super().__init__(description, headers={"Retry-After": str(retry_after)})


class TooManyRequests(AuthorityError):
    """429. ``Retry-After`` says when asking again can succeed (a rate window's end);
    without it, waiting alone will not help (too many calls await their owner)."""

    error = "too_many_requests"
    status_code = 429
    default_description = "Too many requests; retry later."

    def __init__(self, description: str | None = None, *, retry_after: int | None = 1):
        headers = None if retry_after is None else {"Retry-After": str(retry_after)}
        super().__init__(description, headers=headers)


# --- management API (same body shape, HTTP semantics) -----------------------------------
class NotFound(AuthorityError):
    error = "not_found"
    status_code = 404
    default_description = "No such object."


class Conflict(AuthorityError):
    error = "conflict"
    status_code = 409
    default_description = "The object conflicts with one that exists."


class MethodNotAllowed(AuthorityError):
    error = "method_not_allowed"
    status_code = 405
    default_description = "The method is not allowed on this resource."


class PayloadTooLarge(AuthorityError):
    error = "invalid_request"
    status_code = 413
    default_description = "The request body is too large."


class UnsupportedMediaType(AuthorityError):
    error = "invalid_request"
    status_code = 415
    default_description = "The request body has the wrong content type."


class ServerError(AuthorityError):
    error = "server_error"
    status_code = 500
    default_description = "The server encountered an unexpected condition."
