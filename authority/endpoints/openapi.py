"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

Generated, never written by hand: the paths and methods are the application's own route
table (``request.app.routes``), the request bodies are the pydantic models the endpoints
validate with (``management.inputs.Body`` subclasses for JSON, ``endpoints.forms`` for
the OAuth forms), and the answers are the dataclasses the endpoints render (or, where an
answer is built as a dict, ``endpoints.openapi_shapes``). What this module adds is only
what the code cannot say of itself: a summary per operation, its query parameters, who
may call it, and which answers it gives.

A route with no entry in ``OPERATIONS`` fails the build of the document (and the test
that builds it), so a new endpoint cannot go undocumented. The console's HTML pages under
``/console`` are not part of the API and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authority.approvals import decisions
from authority.approvals import webhook_registration as registration
from authority.errors import AuthorityError
from authority.grants import delegations
from authority.ledger.schemas import KINDS
from authority.management import (
    agents,
    api_keys,
    autonomy,
    controls,
    owners,
    resource_servers,
    tools,
)
from authority.management.auth import Principal
from authority.recordings import submission
from authority.settings import Settings

from . import forms, paths
from . import openapi_shapes as shapes
from .ledger import DECISIONS

PATH: Final = paths.OPENAPI
OPENAPI_VERSION: Final = "3.1.0"
#: The document changes only with a redeploy, as the metadata does.
MAX_AGE = 3600
CONSOLE_PAGES: Final = "/console"

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
    Query("cursor", {"type": "string", "pattern": "^[0-9]{1,19}$"}, "The previous next_cursor."),
)
_TEXT = {"type": "string", "maxLength": 2048}
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


def _ok(shape: Any, **kwargs: Any) -> tuple[Answer, ...]:
    return (Answer(shape, **kwargs),)


def _created(shape: Any, **kwargs: Any) -> tuple[Answer, ...]:
    return (Answer(shape, status=201, description="Created", **kwargs),)


_SECRET = {"type": "string", "description": "Shown this once; only its hash is kept."}
_READ = (400, 401, 403, 404, 429, 503)
_WRITE = (400, 401, 403, 404, 409, 413, 415, 429, 503)
_PUBLIC = (429,)


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _listing(item: Any) -> Answer:
    return Answer(("page", item))


def _management() -> dict[tuple[str, str], Operation]:
    def crud(
        base: str,
        noun: str,
        record: Any,
        create: type[BaseModel] | None,
        update: type[BaseModel] | None,
        *,
        param: str,
        created: tuple[Answer, ...] | None = None,
        tag: str,
    ) -> dict[tuple[str, str], Operation]:
        one = f"{base}/{{{param}}}"
        ops = {
            ("GET", base): Operation(
                f"List the {noun}s", tag, "api_key", (_listing(record),), query=PAGE, errors=_READ
            ),
            ("GET", one): Operation(f"Get one {noun}", tag, "api_key", _ok(record), errors=_READ),
            ("DELETE", one): Operation(
                f"Retire {_article(noun)} {noun} (the record stays)",
                tag,
                "api_key",
                _ok(record),
                errors=_WRITE,
            ),
        }
        if create is not None:
            ops["POST", base] = Operation(
                f"Create {_article(noun)} {noun}",
                tag,
                "api_key",
                created or _created(record),
                body=create,
                errors=_WRITE,
            )
        if update is not None:
            ops["PATCH", one] = Operation(
                f"Change {_article(noun)} {noun} (only the fields sent)",
                tag,
                "api_key",
                _ok(record),
                body=update,
                errors=_WRITE,
            )
        return ops

    issued_key = _created(api_keys.ApiKey, extra={"api_key": _SECRET}, required_extra=("api_key",))
    issued_secret = {"client_secret": {**_SECRET, "description": "For a secret auth_method."}}
    return {
        ("GET", "/v1/me"): Operation(
            "Who the API key is", "management", "api_key", _ok(Principal), errors=_READ
        ),
        **crud(
            "/v1/owners",
            "owner",
            owners.Owner,
            owners.OwnerCreate,
            owners.OwnerUpdate,
            param="owner_id",
            tag="owners",
        ),
        **crud(
            "/v1/owners/{owner_id}/api-keys",
            "owner API key",
            api_keys.ApiKey,
            api_keys.OwnerKeyCreate,
            None,
            param="key_id",
            created=issued_key,
            tag="api-keys",
        ),
        **crud(
            "/v1/api-keys",
            "admin or auditor API key",
            api_keys.ApiKey,
            api_keys.KeyCreate,
            None,
            param="key_id",
            created=issued_key,
            tag="api-keys",
        ),
        **crud(
            "/v1/agents",
            "agent",
            agents.Agent,
            agents.AgentCreate,
            agents.AgentUpdate,
            param="agent_id",
            tag="agents",
        ),
        **crud(
            "/v1/tools",
            "tool",
            tools.Tool,
            tools.ToolCreate,
            tools.ToolUpdate,
            param="tool_id",
            tag="tools",
        ),
        **crud(
            "/v1/resource-servers",
            "resource server",
            resource_servers.ResourceServer,
            resource_servers.ServerCreate,
            resource_servers.ServerUpdate,
            param="server_id",
            created=_created(resource_servers.ResourceServer, extra=issued_secret),
            tag="resource-servers",
        ),
        ("POST", "/v1/resource-servers/{server_id}/secret"): Operation(
            "Rotate a resource server's client secret",
            "resource-servers",
            "api_key",
            _ok(resource_servers.ResourceServer, extra=issued_secret),
            errors=_WRITE,
        ),
    }


def _grants() -> dict[tuple[str, str], Operation]:
    approval = "/v1/approvals/{approval_id}"
    webhook = "/v1/owners/{owner_id}/webhook"
    return {
        ("GET", "/v1/delegations"): Operation(
            "List delegations",
            "delegations",
            "api_key",
            (_listing(shapes.DelegationView),),
            query=(*PAGE, Query("agent_id", _TEXT, "Only this agent's.")),
            errors=_READ,
        ),
        ("POST", "/v1/delegations"): Operation(
            "Delegate to an agent (owner keys only)",
            "delegations",
            "api_key",
            _created(shapes.CreatedDelegation),
            body=delegations.CreateDelegation,
            errors=_WRITE,
        ),
        ("GET", "/v1/delegations/{delegation_id}"): Operation(
            "Get one delegation", "delegations", "api_key", _ok(shapes.DelegationView), errors=_READ
        ),
        ("POST", "/v1/delegations/{delegation_id}/revoke"): Operation(
            "Revoke a delegation",
            "delegations",
            "api_key",
            _ok(shapes.DelegationView),
            body=delegations.RevokeDelegation,
            body_required=False,
            errors=_WRITE,
        ),
        ("POST", "/v1/agents/{agent_id}/quarantine"): Operation(
            "Quarantine an agent",
            "controls",
            "api_key",
            _ok(agents.Agent),
            body=controls.QuarantineBody,
            errors=_WRITE,
        ),
        ("POST", "/v1/agents/{agent_id}/release"): Operation(
            "Release a quarantined agent",
            "controls",
            "api_key",
            _ok(agents.Agent),
            body=controls.ReleaseBody,
            body_required=False,
            errors=_WRITE,
        ),
        ("POST", "/v1/owners/{owner_id}/kill"): Operation(
            "The kill switch: revoke every delegation and quarantine every agent of the owner",
            "controls",
            "api_key",
            _ok(controls.Killed),
            body=controls.KillBody,
            errors=_WRITE,
        ),
        ("POST", "/v1/agents/{agent_id}/autonomy"): Operation(
            "Set an agent's autonomy level (0: every call awaits approval)",
            "agents",
            "api_key",
            _ok(agents.Agent),
            body=autonomy.AutonomyBody,
            errors=_WRITE,
        ),
        ("GET", "/v1/approvals"): Operation(
            "List approval requests",
            "approvals",
            "api_key",
            (_listing(decisions.Approval),),
            query=(
                *PAGE,
                Query("status", _TEXT, "Only approvals in this status."),
                Query("agent_id", _TEXT, "Only this agent's."),
            ),
            errors=_READ,
        ),
        ("GET", approval): Operation(
            "Get one approval request",
            "approvals",
            "api_key",
            _ok(decisions.Approval),
            errors=_READ,
        ),
        ("POST", approval + "/approve"): Operation(
            "Approve a call",
            "approvals",
            "api_key",
            _ok(decisions.Approval),
            body=decisions.Decision,
            body_required=False,
            errors=_WRITE,
        ),
        ("POST", approval + "/deny"): Operation(
            "Deny a call",
            "approvals",
            "api_key",
            _ok(decisions.Approval),
            body=decisions.Decision,
            body_required=False,
            errors=_WRITE,
        ),
        ("GET", webhook): Operation(
            "The owner's approval webhook",
            "approvals",
            "api_key",
            _ok(registration.Webhook),
            errors=_READ,
        ),
        ("PUT", webhook): Operation(
            "Set the owner's approval webhook",
            "approvals",
            "api_key",
            _ok(registration.Webhook, extra={"secret": _SECRET}, required_extra=("secret",)),
            body=registration.WebhookSet,
            errors=_WRITE,
        ),
        ("DELETE", webhook): Operation(
            "Remove the owner's approval webhook",
            "approvals",
            "api_key",
            _ok(registration.Webhook),
            errors=_WRITE,
        ),
    }


def _ledger() -> dict[tuple[str, str], Operation]:
    text = _TEXT
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
            _ok(shapes.LedgerEntries),
            query=(*filters, *LEDGER_PAGE),
            errors=_READ,
        ),
        ("GET", paths.LEDGER_EXPORT): Operation(
            "Every entry as JSON Lines, by default up to the latest checkpoint",
            auditor,
            "api_key",
            _ok({"type": "string"}, media_type="application/jsonl"),
            query=(Query("start", _integer()), Query("end", _integer())),
            errors=_READ,
        ),
        ("GET", paths.LEDGER_CHECKPOINT): Operation(
            "The latest signed tree head",
            auditor,
            "api_key",
            _ok(shapes.LedgerCheckpoint),
            errors=_READ,
        ),
        ("GET", paths.LEDGER_CHECKPOINTS): Operation(
            "Every signed tree head",
            auditor,
            "api_key",
            _ok(shapes.LedgerCheckpoints),
            query=LEDGER_PAGE,
            errors=_READ,
        ),
        ("GET", paths.LEDGER_INCLUSION_PROOF): Operation(
            "An inclusion proof (RFC 9162 §2.1.3)",
            auditor,
            "api_key",
            _ok(shapes.InclusionProof),
            query=(
                Query("leaf_index", _integer(), required=True),
                Query("tree_size", _integer(1), required=True),
            ),
            errors=_READ,
        ),
        ("GET", paths.LEDGER_CONSISTENCY_PROOF): Operation(
            "A consistency proof (RFC 9162 §2.1.4)",
            auditor,
            "api_key",
            _ok(shapes.ConsistencyProof),
            query=(
                Query("first", _integer(1), required=True),
                Query("second", _integer(1), required=True),
            ),
            errors=_READ,
        ),
        ("GET", paths.LEDGER_KEYS): Operation(
            "Every ledger signing key ever used (a JWK Set)",
            auditor,
            "public",
            _ok(shapes.JwkSet),
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
            _ok(shapes.Recordings),
            query=(
                Query("jti", {"type": "string", "maxLength": 64}),
                Query("grant", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"}),
                *PAGE,
            ),
            errors=_READ,
        ),
        ("GET", paths.RECORDINGS + "/{call_id}"): Operation(
            "One recording with its ledger entry",
            "recordings",
            "api_key",
            _ok(shapes.RecordingView),
            errors=_READ,
        ),
    }


def _oauth() -> dict[tuple[str, str], Operation]:
    dpop = Query("DPoP", {"type": "string"}, "A DPoP proof JWT (RFC 9449 §4).")
    client_errors = (400, 401, 413, 415, 429, 503)
    metadata = _ok(shapes.Metadata)
    return {
        ("POST", paths.TOKEN): Operation(
            "Token exchange (RFC 8693) for one tool call, or collect an approved one (CIBA)",
            "oauth",
            "agent",
            _ok(("oneOf", shapes.TokenResponse, shapes.CibaAcknowledgement)),
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
            _ok(shapes.Introspection),
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
            _ok({"type": "string"}, media_type="text/event-stream"),
            headers=(Query("Last-Event-ID", {"type": "string"}, "Resume after this event."),),
            errors=(400, 401, 429, 503),
        ),
        ("POST", paths.REVOCATION_FEED): Operation(
            "The revocation feed, client authentication in the body",
            "oauth",
            "client",
            _ok({"type": "string"}, media_type="text/event-stream"),
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
            _ok(shapes.JwkSet),
            errors=_PUBLIC,
        ),
        ("GET", PATH): Operation(
            "This document", "discovery", "public", _ok({"type": "object"}), errors=_PUBLIC
        ),
        ("GET", "/healthz"): Operation(
            "Liveness", "operations", "public", _ok(shapes.Health), errors=_PUBLIC
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
            _ok({"type": "string"}, media_type="text/plain"),
            errors=(400, 401, 403, 404, 429),
        ),
    }


def _console() -> dict[tuple[str, str], Operation]:
    from authority.console import people
    from authority.storage.console import Person

    issued = {
        "enrolment_url": {**_SECRET, "description": "The one-time enrolment link."},
        "enrolment_expires_at": {"type": "integer"},
    }
    required = ("enrolment_url", "enrolment_expires_at")
    base = "/v1/console/people"
    return {
        ("GET", base): Operation(
            "The console's people", "console", "api_key", (_listing(Person),), errors=_READ
        ),
        ("POST", base): Operation(
            "Invite a person to the console (answers their enrolment link)",
            "console",
            "api_key",
            _created(Person, extra=issued, required_extra=required),
            body=people.PersonCreate,
            errors=_WRITE,
        ),
        ("POST", base + "/{person_id}/enrolment"): Operation(
            "A new enrolment link (a new passkey)",
            "console",
            "api_key",
            _ok(Person, extra=issued, required_extra=required),
            errors=_WRITE,
        ),
        ("DELETE", base + "/{person_id}"): Operation(
            "Retire a person", "console", "api_key", _ok(Person), errors=_WRITE
        ),
    }


def operations() -> dict[tuple[str, str], Operation]:
    """Every documented (method, path), whatever the settings enable."""
    return {**_oauth(), **_management(), **_grants(), **_ledger(), **_console()}


# --- building the document ---------------------------------------------------------------------
class UndocumentedRoute(LookupError):
    """A route of the API has no entry in ``OPERATIONS``."""


def _error_codes() -> list[str]:
    codes: set[str] = set()
    pending: list[type[AuthorityError]] = [AuthorityError]
    while pending:
        cls = pending.pop()
        codes.add(cls.error)
        pending.extend(cls.__subclasses__())
    return sorted(codes)


class _Schemas:
    """Named types, described once each in ``components.schemas`` and referred to."""

    def __init__(self) -> None:
        self._wanted: dict[tuple[Any, JsonSchemaMode], dict[str, Any]] = {}

    def ref(self, shape: Any, mode: JsonSchemaMode) -> dict[str, Any]:
        placeholder: dict[str, Any] = {}
        return self._wanted.setdefault((shape, mode), placeholder)

    def schema(self, shape: Any, mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        if isinstance(shape, dict):
            return shape
        if isinstance(shape, tuple) and shape[0] == "page":
            return {
                "type": "object",
                "required": ["items", "next_cursor"],
                "properties": {
                    "items": {"type": "array", "items": self.schema(shape[1], mode)},
                    "next_cursor": {"type": ["string", "null"]},
                },
            }
        if isinstance(shape, tuple) and shape[0] == "oneOf":
            return {"oneOf": [self.schema(member, mode) for member in shape[1:]]}
        return self.ref(shape, mode)

    def components(self) -> dict[str, Any]:
        keys = list(self._wanted)
        adapters = [(key, key[1], TypeAdapter(key[0])) for key in keys]
        mapping, definitions = TypeAdapter.json_schemas(
            adapters, ref_template="#/components/schemas/{model}"
        )
        for key in keys:
            self._wanted[key].update(mapping[key, key[1]])
        return dict(definitions.get("$defs", {}))


def _without_null(schema: dict[str, Any]) -> None:
    """A form has no null: an optional parameter is one left out, not one sent empty."""
    for prop in schema.get("properties", {}).values():
        members = prop.pop("anyOf", None)
        if members is not None:
            (kept,) = [m for m in members if m.get("type") != "null"]
            prop.update(kept)
        if prop.get("default", ...) is None:
            del prop["default"]


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


def _parameters(path: str, op: Operation) -> list[dict[str, Any]]:
    result = _path_parameters(path)
    for location, items in (("query", op.query), ("header", op.headers)):
        for item in items:
            parameter: dict[str, Any] = {
                "name": item.name,
                "in": location,
                "required": item.required,
                "schema": item.schema,
            }
            if item.description:
                parameter["description"] = item.description
            result.append(parameter)
    return result


def _answer(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    if answer.shape is None:
        return {"description": answer.description}
    schema = schemas.schema(answer.shape)
    if answer.extra:
        addition: dict[str, Any] = {"type": "object", "properties": answer.extra}
        if answer.required_extra:
            addition["required"] = list(answer.required_extra)
        schema = {"allOf": [schema, addition]}
    return {"description": answer.description, "content": {answer.media_type: {"schema": schema}}}


def _operation(
    method: str, path: str, op: Operation, schemas: _Schemas, error: dict[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": [op.tag],
        "security": SECURITY[op.security],
    }
    if op.description:
        result["description"] = op.description
    parameters = _parameters(path, op)
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        result["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": schemas.schema(op.body, "validation")}},
        }
    elif op.form:
        members = [schemas.schema(model, "validation") for model in op.form]
        form_schema = members[0] if len(members) == 1 else {"oneOf": members}
        result["requestBody"] = {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": form_schema}},
        }
    responses: dict[str, Any] = {}
    for answer in op.answers:
        responses[str(answer.status)] = _answer(answer, schemas)
    for status in op.errors:
        responses.setdefault(
            str(status),
            {
                "description": _ERROR_DESCRIPTIONS.get(status, "Refused"),
                "content": {"application/json": {"schema": error}},
            },
        )
    result["responses"] = responses
    return result


_ERROR_DESCRIPTIONS: Final = {
    400: "Malformed or refused request (invalid_request, invalid_grant, ...)",
    401: "Missing or bad credentials",
    403: "The credentials may not do this",
    404: "No such object, or not the caller's",
    409: "Conflicts with the current state",
    413: "The body is too large",
    415: "Wrong content type",
    429: "Too many requests",
    503: "A store is unreachable: retry (temporarily_unavailable)",
}


def _operation_id(method: str, path: str) -> str:
    words = [
        part.strip("{}").replace("-", "_").replace(".", "_")
        for part in path.split("/")
        if part and part not in ("v1", "oauth2")
    ]
    return "_".join([method.lower(), *words])


def _api_routes(routes: Iterable[BaseRoute]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in routes:
        # The console's HTML pages (a Mount, and /console itself) are not part of the API.
        if isinstance(route, Route) and route.path != CONSOLE_PAGES:
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append((method, route.path))
    return found


def build_document(settings: Settings, routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of exactly these routes."""
    documented = operations()
    schemas = _Schemas()
    error = schemas.schema(shapes.OAuthError)
    document_paths: dict[str, dict[str, Any]] = {}
    for method, path in _api_routes(routes):
        op = documented.get((method, path))
        if op is None:
            raise UndocumentedRoute(f"{method} {path} has no entry in endpoints.openapi")
        document_paths.setdefault(path, {})[method.lower()] = _operation(
            method, path, op, schemas, error
        )
    components = schemas.components()
    for model in {model for op in documented.values() for model in op.form}:
        _without_null(components[model.__name__])
    components["OAuthError"]["properties"]["error"]["enum"] = _error_codes()
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "authority",
            "version": _version(),
            "description": "Short-lived, per-call credentials for AI agents. Errors are "
            "RFC 6749 §5.2 objects: {error, error_description}.",
        },
        "servers": [{"url": settings.issuer}],
        "paths": document_paths,
        "components": {"schemas": components, "securitySchemes": SCHEMES},
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("authority")
    except PackageNotFoundError:
        return "0"


async def serve(request: Request) -> Response:
    state = request.app.state
    rendered: bytes | None = getattr(state, "openapi_document", None)
    if rendered is None:
        services = state.services
        rendered = orjson.dumps(build_document(services.settings, request.app.routes))
        state.openapi_document = rendered
    return Response(
        rendered,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={MAX_AGE}"},
    )


routes = [Route(PATH, serve, methods=["GET"])]

__all__ = ["PATH", "build_document", "operations", "routes"]
