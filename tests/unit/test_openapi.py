"""The OpenAPI document is generated from the route table and the models the endpoints use."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import schemathesis
from starlette.routing import Route

from authority.app import routes
from authority.endpoints import forms, openapi, paths
from authority.endpoints.http import Form, UndeclaredParameter
from authority.recordings import submission
from authority.settings import Settings


def _settings() -> Settings:
    return Settings(console_enabled=True)


def _document() -> dict[str, Any]:
    settings = _settings()
    return openapi.build_document(settings, routes(settings))


def test_the_document_is_valid_openapi_3_1() -> None:
    document = _document()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()


def test_every_route_of_the_api_is_documented_and_nothing_else() -> None:
    settings = _settings()
    served = {
        (method.lower(), route.path)
        for route in routes(settings)
        if isinstance(route, Route) and route.path != "/console"
        for method in route.methods or ()
        if method != "HEAD"
    }
    document = openapi.build_document(settings, routes(settings))
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert documented == served
    assert {path for _, path in served if path.startswith("/v1/")}
    assert ("post", "/oauth2/token") in documented


def test_an_undocumented_route_fails_the_build() -> None:
    async def handler(request: Any) -> Any:
        raise NotImplementedError

    with pytest.raises(openapi.UndocumentedRoute):
        openapi.build_document(_settings(), [Route("/v1/new", handler, methods=["GET"])])


def _source(route: Route) -> str:
    endpoint = getattr(route.endpoint, "__wrapped__", route.endpoint)
    source = inspect.getsource(endpoint)
    if route.path == paths.GATEWAY_CALLS:
        # The record is parsed by the submission's own rules, not in the handler.
        source += inspect.getsource(submission).replace("parse(CallIn", "parse(.CallIn")
    return source


def test_the_bodies_are_the_models_the_endpoints_read() -> None:
    # The document names the model; the handler must be the one that validates with it,
    # and every handler that reads a body must have its model in the document.
    documented = openapi.operations()
    for route in routes(_settings()):
        if not isinstance(route, Route) or route.path == "/console":
            continue
        source = _source(route)
        for method in route.methods or ():
            op = documented.get((method, route.path))
            if op is None:
                continue
            if op.body is not None:
                assert f".{op.body.__name__}" in source, (method, route.path)
            else:
                assert "read_model(" not in source, (method, route.path)
            if op.form:
                names = ["TOKEN_FORMS"] if len(op.form) > 1 else [op.form[0].__name__]
                assert any(f"forms.{name}" in source for name in names), (method, route.path)
            elif method == "POST":
                assert "read_form(" not in source, (method, route.path)


def test_form_parameters_are_never_null_and_the_error_codes_are_listed() -> None:
    schemas = _document()["components"]["schemas"]
    for name in ("TokenExchangeForm", "CibaTokenForm", "IntrospectionForm", "RevocationForm"):
        for prop in schemas[name]["properties"].values():
            assert "anyOf" not in prop and prop.get("type") != "null", name
    codes = schemas["OAuthError"]["properties"]["error"]["enum"]
    assert {"invalid_request", "invalid_client", "temporarily_unavailable"} <= set(codes)
    assert schemas["OAuthError"]["required"] == ["error", "error_description"]


def test_the_security_schemes_are_described() -> None:
    document = _document()
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["clientBasic"]["scheme"] == "basic"
    assert schemes["dpop"]["name"] == "DPoP"
    assert document["paths"]["/v1/owners"]["get"]["security"] == [{"apiKey": []}]
    token = document["paths"]["/oauth2/token"]["post"]
    assert {"dpop": []} in token["security"]
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]


def test_an_endpoint_reads_only_the_parameters_its_form_model_declares() -> None:
    declared = forms.IntrospectionForm.names()
    form = Form([("token", "t"), ("surprise", "x")], frozenset(), declared)
    assert form.get("token") == "t"
    assert "surprise" not in declared
    with pytest.raises(UndeclaredParameter):
        form.get("surprise")
    # Names read only to refuse them (scope, client_secret) are not offered by the document.
    schema = _document()["components"]["schemas"]["TokenExchangeForm"]
    assert "scope" not in schema["properties"] and "client_secret" not in schema["properties"]
    assert {"resource", "audience"} == forms.TokenExchangeForm.REPEATABLE
