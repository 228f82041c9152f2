"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

Generated, never written by hand: the paths and methods are the application's own route
table (``request.app.routes``), the request bodies are the pydantic models the endpoints
validate with (``management.inputs.Body`` subclasses for JSON, ``endpoints.forms`` for
the OAuth forms), and the answers are the dataclasses the endpoints render (or, where an
answer is built as a dict, ``endpoints.openapi_shapes``). What is added by hand is only
what the code cannot say of itself (``openapi_operations``, ``openapi_v1``): a summary
per operation, its query parameters, who may call it, and which answers it gives.

A route with no entry there fails the build of the document (and the test that builds
it), so a new endpoint cannot go undocumented. The console's HTML pages under
``/console`` are not part of the API and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import orjson
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authority.errors import AuthorityError
from authority.settings import Settings

from . import openapi_shapes as shapes
from .openapi_operations import (
    PATH,
    SCHEMES,
    SECURITY,
    Answer,
    Operation,
    ledger_operations,
    oauth_operations,
)
from .openapi_policies import policy_operations
from .openapi_v1 import (
    behaviour_operations,
    console_operations,
    grant_operations,
    management_operations,
)

OPENAPI_VERSION: Final = "3.1.0"
#: The document changes only with a redeploy, as the metadata does.
MAX_AGE = 3600
CONSOLE_PAGES: Final = "/console"


def operations() -> dict[tuple[str, str], Operation]:
    """Every documented (method, path), whatever the settings enable."""
    return {
        **oauth_operations(),
        **management_operations(),
        **grant_operations(),
        **ledger_operations(),
        **console_operations(),
        **policy_operations(),
        **behaviour_operations(),
    }


# --- building the document ---------------------------------------------------------------------
class UndocumentedRoute(LookupError):
    """A route of the API has no entry in ``operations()``."""


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
        body = schemas.schema(op.body, "validation")
        if method == "PATCH":
            # management.inputs.require_changes: an empty PATCH is refused.
            body = {"allOf": [body, {"minProperties": 1}]}
        result["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": body}},
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
            raise UndocumentedRoute(
                f"{method} {path} has no entry in endpoints.openapi_operations or openapi_v1"
            )
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
