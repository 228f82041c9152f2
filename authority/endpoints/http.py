"""Request parsing and response rendering shared by every endpoint.

Bodies are read with a hard size cap before parsing; forms follow RFC 6749 §3.2
("parameters MUST NOT be included more than once") and JSON objects may not repeat a
member name. Every error is an ``AuthorityError`` rendered as
``{"error", "error_description"}``, never an echo of the input.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive

from authority.errors import (
    AuthorityError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServerError,
    UnsupportedMediaType,
)

from .forms import FormBody

log = logging.getLogger("authority.http")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM_FIELDS = 64


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


#: ``NO_STORE`` as Starlette renders it (lower-case names, in order).
_NO_STORE_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in NO_STORE.items()]


class NoStoreJSON(Response):
    """An already rendered JSON body, ``no-store``: the same bytes and headers, in the same
    order, as ``json_response(content, status_code, NO_STORE)``, built without a mapping."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [
            *_NO_STORE_RAW,
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", b"application/json"),
        ]


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers=dict(headers or {}))


def error_response(exc: AuthorityError, *, no_store: bool = True) -> JSONResponse:
    headers = dict(exc.headers)
    if no_store:
        headers.update(NO_STORE)
    return json_response(exc.body(), exc.status_code, headers)


#: Scope key (set by ``limits.ClientLimits``): the loop time by which the body must be in.
BODY_DEADLINE = "authority.body_deadline"


class BodyTimeout(InvalidRequest):
    """The body did not arrive whole by the request's deadline: answer, then hang up."""

    default_description = "The request body was not received in time."

    def __init__(self) -> None:
        super().__init__(headers={"Connection": "close"})


class ClientGone(InvalidRequest):
    """The client hung up before its body was complete: nobody reads the answer."""

    default_description = "The client closed the connection before sending the whole body."


def _first_headers(scope: Mapping[str, Any]) -> tuple[bytes | None, bytes | None]:
    """The first Content-Type and Content-Length values (as ``Headers.get`` reads them),
    in one pass over the raw headers."""
    content_type = content_length = None
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            if content_type is None:
                content_type = value
        elif name == b"content-length" and content_length is None:
            content_length = value
    return content_type, content_length


async def read_body(request: Request, limit: int) -> bytes:
    _, declared = _first_headers(request.scope)
    return await _read_body(request, limit, declared)


async def _read_body(request: Request, limit: int, declared: bytes | None) -> bytes:
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise InvalidRequest("The Content-Length header is invalid.")
        if int(declared) > limit:
            raise PayloadTooLarge()
    deadline = request.scope.get(BODY_DEADLINE)
    try:
        async with asyncio.timeout_at(deadline if isinstance(deadline, float) else None):
            return await _receive_body(request.receive, limit)
    except TimeoutError:
        log.info("request body not received by its deadline")
        raise BodyTimeout() from None
    except ClientDisconnect:
        # A client hanging up mid-body is a normal event, not an unexpected error.
        services = getattr(request.app.state, "services", None)
        if services is not None:
            services.metrics.client_disconnects.inc()
        log.debug("client disconnected before its body was complete")
        raise ClientGone() from None


async def _receive_body(receive: Receive, limit: int) -> bytes:
    """The body's chunks as ``Request.stream`` reads them, straight from ``receive``: a
    body that came in one message (the usual case) is returned as it is."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge()
            if not message.get("more_body", False):
                if not chunks:
                    return bytes(chunk)
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)
        elif kind == "http.disconnect":
            raise ClientDisconnect()


def _media_type(request: Request) -> str:
    content_type, _ = _first_headers(request.scope)
    return _media_type_of(content_type)


def _media_type_of(content_type: bytes | None) -> str:
    if content_type is None:
        return ""
    return content_type.decode("latin-1").split(";", 1)[0].strip().lower()


def _no_duplicates(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidRequest("The JSON body repeats a member name.")
        result[key] = value
    return result


def _reject_constant(_: str) -> Any:
    raise InvalidRequest("The JSON body contains a non-finite number.")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
    except InvalidRequest:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return value


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    if _media_type(request) != "application/json":
        raise UnsupportedMediaType("The body must be application/json.")
    return parse_json_object(await read_body(request, limit))


class UndeclaredParameter(LookupError):
    """The code read a form parameter its form model (``endpoints.forms``) does not declare."""


class Form:
    """A parsed application/x-www-form-urlencoded body (RFC 6749 §3.2, appendix B).

    With ``declared``, only those names may be read: the OpenAPI document describes the
    form from the same models, so it names every parameter the endpoint reads.
    """

    def __init__(
        self,
        pairs: list[tuple[str, str]],
        repeatable: frozenset[str],
        declared: frozenset[str] | None = None,
    ) -> None:
        self._declared = declared
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            values = self._values.setdefault(key, [])
            if values and key not in repeatable:
                raise InvalidRequest("A parameter is included more than once.")
            values.append(value)

    def _check(self, key: str) -> None:
        if self._declared is not None and key not in self._declared:
            raise UndeclaredParameter(key)

    def get(self, key: str) -> str | None:
        """The parameter's value; an empty value counts as absent (RFC 6749 §3.1)."""
        self._check(key)
        values = self._values.get(key)
        if not values or values[0] == "":
            return None
        return values[0]

    def require(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise InvalidRequest(f"The {key} parameter is missing.")
        return value

    def get_all(self, key: str) -> list[str]:
        self._check(key)
        return [v for v in self._values.get(key, []) if v != ""]

    def __contains__(self, key: str) -> bool:
        self._check(key)
        return key in self._values


class _Malformed(ValueError):
    """Not application/x-www-form-urlencoded as ``parse_qsl(strict_parsing=True)`` reads it."""


#: Encoded fields up to this length are kept decoded (``_decoded``): clients send the
#: same grant type, token types, resource and call again and again.
MAX_KEPT_FIELD = 512


@functools.lru_cache(maxsize=1024)
def _decoded(text: str) -> str:
    """``text``'s ``%XX`` decoded as UTF-8, strictly: a function of ``text`` alone, kept by
    it (a refusal raises, and ``lru_cache`` keeps no exception)."""
    return unquote_to_bytes(text).decode("utf-8", "strict")


def _unquote_plus(text: str) -> str:
    """``unquote(text.replace("+", " "), errors="strict")`` for ASCII ``text``, as
    ``parse_qsl`` decodes a name or a value: on an ASCII string with a ``%``, CPython's
    ``unquote`` splits it into one ASCII run and returns ``unquote_to_bytes`` of that run
    decoded as UTF-8, which is what is done here, without the split and the join."""
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    return _decoded(text) if len(text) <= MAX_KEPT_FIELD else _decoded.__wrapped__(text)


def parse_urlencoded(raw: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a form body, in order: ASCII only, at most
    ``MAX_FORM_FIELDS``, every field ``name=value`` (no empty field, no field without
    ``=``), ``+`` and ``%XX`` decoded as UTF-8 (strictly). What
    ``urllib.parse.parse_qsl(keep_blank_values=True, strict_parsing=True,
    errors="strict", max_num_fields=MAX_FORM_FIELDS)`` returns for the same bytes, or
    ``InvalidRequest`` where it raises; without its per-field function calls when there
    is nothing to decode."""
    if not raw:
        return []
    try:
        text = raw.decode("ascii")
        if text.count("&") >= MAX_FORM_FIELDS:
            raise _Malformed()
        pairs: list[tuple[str, str]] = []
        for field in text.split("&"):
            name, equals, value = field.partition("=")
            if not equals:
                raise _Malformed()
            if "%" in value or "+" in value:
                value = _unquote_plus(value)
            if "%" in name or "+" in name:
                name = _unquote_plus(name)
            pairs.append((name, value))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The form body is malformed.") from None
    return pairs


async def read_form(request: Request, limit: int, *, schema: Sequence[type[FormBody]] = ()) -> Form:
    """The form, readable only by the names the ``schema`` models declare (all if none)."""
    scope = request.scope
    if scope.get("query_string"):
        # RFC 6749 §3.2 / RFC 7662 §2.1: parameters go in the body; a token in a URL ends
        # up in logs and histories.
        raise InvalidRequest("Parameters must be sent in the request body, not the URL.")
    content_type, declared = _first_headers(scope)
    if _media_type_of(content_type) != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("The body must be application/x-www-form-urlencoded.")
    pairs = parse_urlencoded(await _read_body(request, limit, declared))
    repeatable, names = _names_of(tuple(schema))
    return Form(pairs, repeatable, names)


@functools.cache
def _names_of(schema: tuple[type[FormBody], ...]) -> tuple[frozenset[str], frozenset[str] | None]:
    """The repeatable and the declared names of a form's models: the same every request."""
    repeatable = frozenset().union(*(model.REPEATABLE for model in schema))
    declared = frozenset().union(*(model.names() for model in schema)) if schema else None
    return repeatable, declared


def allowed_methods(request: Request, fallback: str = "") -> str:
    """RFC 9110 §15.5.6: a 405 "MUST generate an Allow header field" listing the methods
    the target supports; Starlette's names only those of the first route on the path."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods)) if methods else fallback


def render_unexpected(exc: BaseException) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(ServerError())


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 in the RFC error shape; a 405 names every method the
    path answers (RFC 9110 §15.5.6), from the whole route table."""
    assert isinstance(exc, HTTPException)
    err: AuthorityError = NotFound("No such endpoint.")
    if exc.status_code == 405:
        allow = allowed_methods(request, (exc.headers or {}).get("Allow", ""))
        err = MethodNotAllowed(headers={"Allow": allow})
    return error_response(err)
