"""What the OpenAPI document says of each operation that the code cannot say of itself.

A summary, the query and header parameters, who may call it (the security schemes) and
which answers it gives; the bodies and the answers' shapes are the code's own types
(``endpoints.openapi`` describes them). This module holds the vocabulary and the OAuth,
discovery, operations and ledger endpoints; ``openapi_v1`` the management API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel

from authority.ledger.schemas import KINDS
from authority.recordings import submission

from . import forms, paths
from . import openapi_shapes as shapes
from .ledger import DECISIONS

#: Where the document is served (named in the metadata as authority_openapi_uri).
PATH: Final = paths.OPENAPI

Security = Literal["api_key", "client", "agent", "metrics", "public"]

SCHEMES: Final[dict[str, dict[str, Any]]] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (RFC 6750 bearer): admin, owner or auditor. The first "
        "admin key comes from `authority admin bootstrap`; owner keys from "
        "POST /v1/owners/{owner_id}/api-keys.",
    },
    "clientBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "A resource server's client_id and client_secret "
        "(client_secret_basic, RFC 6749 §2.3.1). client_secret_post and private_key_jwt "
        "(RFC 7523 §2.2) are sent in the body instead.",
    },
    "dpop": {
        "type": "apiKey",
        "in": "header",
        "name": "DPoP",
        "description": "A DPoP proof (RFC 9449) binding the token to the agent's key; "
        "required by tools registered with dpop_required.",
    },
}

SECURITY: Final[dict[Security, list[dict[str, list[str]]]]] = {
    "api_key": [{"apiKey": []}],
    # Basic in the header, or client_secret_post / private_key_jwt in the body.
    "client": [{"clientBasic": []}, {}],
    # The agent proves itself with its attestation JWT in the form; DPoP is optional.
    "agent": [{}, {"dpop": []}],
    # The metrics token (setting metrics_token), or an admin or auditor API key.
    "metrics": [{"apiKey": []}],
    "public": [{}],
}


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


def _integer(minimum: int = 0) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": 2**62}


_CURSOR = {"type": "string", "maxLength": 200}
PAGE = (
    Query("limit", {"type": "integer", "minimum": 1}, "Items per page, at most page_size_max."),
    Query("cursor", _CURSOR, "The next_cursor of the previous page."),
)
LEDGER_PAGE = (
    Query("limit", {"type": "integer", "minimum": 1}, "Items per page, at most page_size_max."),
    # Empty counts as absent here (the first page).
    Query("cursor", {"type": "string", "pattern": "^[0-9]{0,19}$"}, "The previous next_cursor."),
)
TEXT = {"type": "string", "maxLength": 2048}
_TIME = {
    "type": "string",
    "description": "Unix seconds, or an RFC 3339 date-time with its offset.",
    "maxLength": 40,
}


@dataclass(frozen=True, slots=True)
class Answer:
    """One success answer: its status and body (a type to describe, or a literal schema)."""

    shape: Any = None
    status: int = 200
    media_type: str = "application/json"
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    required_extra: tuple[str, ...] = ()
    description: str = "OK"


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    tag: str
    security: Security
    answers: tuple[Answer, ...]
    body: type[BaseModel] | None = None
    body_required: bool = True
    form: tuple[type[forms.FormBody], ...] = ()
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = (400, 401, 403, 404, 413, 415, 429, 503)
    headers: tuple[Query, ...] = ()
    description: str = ""


def ok(shape: Any, **kwargs: Any) -> tuple[Answer, ...]:
    return (Answer(shape, **kwargs),)


def created(shape: Any, **kwargs: Any) -> tuple[Answer, ...]:
    return (Answer(shape, status=201, description="Created", **kwargs),)


SECRET = {"type": "string", "description": "Shown this once; only its hash is kept."}
READ = (400, 401, 403, 404, 429, 503)
WRITE = (400, 401, 403, 404, 409, 413, 415, 429, 503)
_PUBLIC = (429,)


def article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def listing(item: Any) -> Answer:
    return Answer(("page", item))


def ledger_operations() -> dict[tuple[str, str], Operation]:
    text = TEXT
    filters = (
        Query("agent", text),
        Query("owner", text),
        Query("delegation", text),
        Query("tool", text),
        Query("decision", {"type": "string", "enum": sorted(DECISIONS)}),
        Query("kind", {"type": "string", "enum": sorted(KINDS)}),
        Query("since", _TIME),
        Query("until", _TIME),
    )
    auditor = "ledger"
    return {
        ("GET", paths.LEDGER_ENTRIES): Operation(
            "Sequenced ledger entries, filtered",
            auditor,
            "api_key",
            ok(shapes.LedgerEntries),
            query=(*filters, *LEDGER_PAGE),
            errors=READ,
        ),
        ("GET", paths.LEDGER_EXPORT): Operation(
            "Every entry as JSON Lines, by default up to the latest checkpoint",
            auditor,
            "api_key",
            ok({"type": "string"}, media_type="application/jsonl"),
            query=(Query("start", _integer()), Query("end", _integer())),
            errors=READ,
        ),
        ("GET", paths.LEDGER_CHECKPOINT): Operation(
            "The latest signed tree head",
            auditor,
            "api_key",
            ok(shapes.LedgerCheckpoint),
            errors=READ,
        ),
        ("GET", paths.LEDGER_CHECKPOINTS): Operation(
            "Every signed tree head",
            auditor,
            "api_key",
            ok(shapes.LedgerCheckpoints),
            query=LEDGER_PAGE,
            errors=READ,
        ),
        ("GET", paths.LEDGER_INCLUSION_PROOF): Operation(
            "An inclusion proof (RFC 9162 §2.1.3)",
            auditor,
            "api_key",
            ok(shapes.InclusionProof),
            query=(
                Query("leaf_index", _integer(), required=True),
                Query("tree_size", _integer(1), required=True),
            ),
            errors=READ,
        ),
        ("GET", paths.LEDGER_CONSISTENCY_PROOF): Operation(
            "A consistency proof (RFC 9162 §2.1.4)",
            auditor,
            "api_key",
            ok(shapes.ConsistencyProof),
            query=(
                Query("first", _integer(1), required=True),
                Query("second", _integer(1), required=True),
            ),
            errors=READ,
        ),
        ("GET", paths.LEDGER_KEYS): Operation(
            "Every ledger signing key ever used (a JWK Set)",
            auditor,
            "public",
            ok(shapes.JwkSet),
            errors=(400, 429),
        ),
        ("POST", paths.GATEWAY_CALLS): Operation(
            "A gateway submits the record of one call",
            "recordings",
            "client",
            (
                Answer(shapes.Submitted, status=201, description="Stored"),
                Answer(shapes.Submitted, description="Stored before (a resubmission)"),
            ),
            body=submission.CallIn,
            errors=(400, 401, 403, 409, 413, 415, 429, 503),
        ),
        ("GET", paths.RECORDINGS): Operation(
            "The recordings of one grant (exactly one of jti and grant)",
            "recordings",
            "api_key",
            ok(shapes.Recordings),
            query=(
                Query("jti", {"type": "string", "maxLength": 64}),
                Query("grant", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"}),
                *PAGE,
            ),
            errors=READ,
        ),
        ("GET", paths.RECORDINGS + "/{call_id}"): Operation(
            "One recording with its ledger entry",
            "recordings",
            "api_key",
            ok(shapes.RecordingView),
            errors=READ,
        ),
    }


def oauth_operations() -> dict[tuple[str, str], Operation]:
    dpop = Query("DPoP", {"type": "string"}, "A DPoP proof JWT (RFC 9449 §4).")
    client_errors = (400, 401, 413, 415, 429, 503)
    metadata = ok(shapes.Metadata)
    return {
        ("POST", paths.TOKEN): Operation(
            "Token exchange (RFC 8693) for one tool call, or collect an approved one (CIBA)",
            "oauth",
            "agent",
            ok(("oneOf", shapes.TokenResponse, shapes.CibaAcknowledgement)),
            form=forms.TOKEN_FORMS,
            headers=(dpop,),
            errors=client_errors,
            description="A call that awaits its owner's approval is answered 200 with the "
            "CIBA acknowledgement (auth_req_id, expires_in, interval), not with a token: "
            "poll with grant_type urn:openid:params:grant-type:ciba.",
        ),
        ("POST", paths.INTROSPECTION): Operation(
            "Token introspection (RFC 7662), for resource servers",
            "oauth",
            "client",
            ok(shapes.Introspection),
            form=(forms.IntrospectionForm,),
            errors=client_errors,
        ),
        ("POST", paths.REVOCATION): Operation(
            "Token revocation (RFC 7009)",
            "oauth",
            "client",
            (Answer(None, description="Revoked, or nothing to revoke (RFC 7009 §2.2)"),),
            form=(forms.RevocationForm,),
            errors=client_errors,
        ),
        ("GET", paths.REVOCATION_FEED): Operation(
            "The revocation feed (Server-Sent Events), client_secret_basic",
            "oauth",
            "client",
            ok({"type": "string"}, media_type="text/event-stream"),
            headers=(Query("Last-Event-ID", {"type": "string"}, "Resume after this event."),),
            errors=(400, 401, 429, 503),
        ),
        ("POST", paths.REVOCATION_FEED): Operation(
            "The revocation feed, client authentication in the body",
            "oauth",
            "client",
            ok({"type": "string"}, media_type="text/event-stream"),
            form=(forms.FeedForm,),
            headers=(Query("Last-Event-ID", {"type": "string"}, "Resume after this event."),),
            errors=client_errors,
        ),
        ("GET", paths.OAUTH_AUTHORIZATION_SERVER): Operation(
            "Authorization server metadata (RFC 8414)",
            "discovery",
            "public",
            metadata,
            errors=_PUBLIC,
        ),
        ("GET", paths.OPENID_CONFIGURATION): Operation(
            "OpenID Discovery configuration", "discovery", "public", metadata, errors=_PUBLIC
        ),
        ("GET", paths.JWKS): Operation(
            "The public signing keys (RFC 7517)",
            "discovery",
            "public",
            ok(shapes.JwkSet),
            errors=_PUBLIC,
        ),
        ("GET", PATH): Operation(
            "This document", "discovery", "public", ok({"type": "object"}), errors=_PUBLIC
        ),
        ("GET", "/healthz"): Operation(
            "Liveness", "operations", "public", ok(shapes.Health), errors=_PUBLIC
        ),
        ("GET", "/readyz"): Operation(
            "Readiness: the database and the hot state answer",
            "operations",
            "public",
            (
                Answer(shapes.Readiness),
                Answer(shapes.Readiness, status=503, description="Not ready"),
            ),
            errors=_PUBLIC,
        ),
        ("GET", "/metrics"): Operation(
            "Prometheus metrics (the metrics token, or an admin or auditor API key)",
            "operations",
            "metrics",
            ok({"type": "string"}, media_type="text/plain"),
            errors=(400, 401, 403, 404, 429),
        ),
    }
