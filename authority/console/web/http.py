"""What every console page does the same way: render, secure, authenticate, check CSRF.

Pages are Jinja2 templates with autoescaping on for every value (agent names, intents,
tool names and call arguments are an agent's or an owner's words, never markup), served
with a strict Content-Security-Policy: scripts only from the console's own files, no
inline script or style, no plugins, no framing, forms only back to the authority. Every
answer is ``no-store``: a page shows what only its person may see.

Every POST is checked for its CSRF token before anything else is read
(``sessions.csrf_matches``); a page or action of a role the person does not have is
403, and a request without a live session is sent to sign-in (GET) or refused (401).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from authority.console import sessions
from authority.console.sessions import Signed
from authority.context import Services
from authority.endpoints.guard import endpoint
from authority.endpoints.http import read_body, read_json
from authority.errors import AuthorityError, InsufficientScope, InvalidRequest
from authority.ledger.checkpoints import encode_hash
from authority.storage.console import Role

log = logging.getLogger("authority.console")

CSP: Final = (
    "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"
MAX_FORM_FIELDS: Final = 200

ROLE_HOME: Final[Mapping[str, str]] = {
    "owner": "/console/owner/approvals",
    "auditor": "/console/ledger",
    "admin": "/console/admin/tools",
}


def format_time(value: int | None) -> str:
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def _call_arguments(value: Any) -> str:
    # Exactly the JSON the call will carry, keys in their canonical order, and every
    # character outside printable ASCII escaped (U+202E, U+2028, ESC): what the
    # owner reads is what is approved, with nothing hidden or reordered by the display.
    # JSON leaves DEL unescaped; it can only stand inside a string here.
    return json.dumps(value, ensure_ascii=True, sort_keys=True, indent=2).replace("\x7f", "\\u007f")


TEMPLATES: Final = Environment(
    loader=PackageLoader("authority.console", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["time"] = format_time
TEMPLATES.filters["pretty"] = _pretty
TEMPLATES.filters["call_arguments"] = _call_arguments
TEMPLATES.filters["b64"] = encode_hash


# --- cookies ------------------------------------------------------------------------------
def cookie_name(services: Services, name: str) -> str:
    # __Host-: Secure, path /, no Domain, so no other host of the site can set it.
    return f"__Host-{name}" if services.settings.console_secure_cookies else name


SESSION_COOKIE: Final = "authority-console"
CEREMONY_COOKIE: Final = "authority-console-ceremony"


def set_cookie(response: Response, services: Services, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        cookie_name(services, name),
        value,
        max_age=max_age,
        path="/",
        secure=services.settings.console_secure_cookies,
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, services: Services, name: str) -> None:
    response.delete_cookie(
        cookie_name(services, name),
        path="/",
        secure=services.settings.console_secure_cookies,
        httponly=True,
        samesite="strict",
    )


def read_cookie(request: Request, services: Services, name: str) -> str | None:
    return request.cookies.get(cookie_name(services, name))


# --- responses ----------------------------------------------------------------------------
def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    signed: Signed | None = None,
    status: int = 200,
    csrf: str | None = None,
) -> HTMLResponse:
    values = {
        "person": signed.person if signed else None,
        "csrf": csrf if csrf is not None else (signed.csrf if signed else ""),
        "path": request.url.path,
        **context,
    }
    body = TEMPLATES.get_template(template).render(**values)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def redirect(location: str) -> RedirectResponse:
    # 303: the browser follows with a GET, so a reload never repeats the POST.
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def json_answer(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=SECURITY_HEADERS)


class NotSignedIn(AuthorityError):
    error = "login_required"
    status_code = 401
    default_description = "Sign in with your passkey first."


class StaleForm(InsufficientScope):
    default_description = "The form has expired or did not come from this console: reload it."


Handler = Callable[[Request], Awaitable[Response]]


def view(handler: Handler) -> Handler:
    """Errors as an HTML page (their fixed description, never the input); storage that
    cannot answer is the guard's 503, as for every endpoint."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except NotSignedIn:
            if request.method == "GET":
                return redirect("/console/sign-in")
            return _error_page(request, NotSignedIn())
        except AuthorityError as exc:
            return _error_page(request, exc)

    return endpoint(wrapped)


def json_view(handler: Handler) -> Handler:
    """For the console's own scripts: errors as ``{"error", "error_description"}``."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except AuthorityError as exc:
            return json_answer(exc.body(), exc.status_code)

    return endpoint(wrapped)


def _error_page(request: Request, exc: AuthorityError) -> HTMLResponse:
    return page(
        request,
        "error.html",
        {"status": exc.status_code, "message": exc.description},
        status=exc.status_code,
    )


# --- who is asking ------------------------------------------------------------------------
async def signed_in(request: Request, roles: Collection[Role] = ()) -> Signed:
    services = services_of(request)
    signed = await sessions.current(services, read_cookie(request, services, SESSION_COOKIE))
    if signed is None:
        raise NotSignedIn()
    if roles and signed.person.role not in roles:
        raise InsufficientScope("This page is not for your role.")
    return signed


class Form:
    """A checked urlencoded form: every field once, except those named repeatable."""

    def __init__(self, pairs: list[tuple[str, str]], repeatable: Collection[str]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            values = self._values.setdefault(key, [])
            if values and key not in repeatable:
                raise InvalidRequest("A form field is included more than once.")
            values.append(value)

    def get(self, key: str) -> str | None:
        values = self._values.get(key)
        return values[0] if values and values[0] != "" else None

    def require(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise InvalidRequest(f"The {key} field is missing.")
        return value

    def get_all(self, key: str) -> list[str]:
        return [v for v in self._values.get(key, []) if v != ""]


async def read_form(request: Request, bound_to: str, *, repeatable: Collection[str] = ()) -> Form:
    """The POST's form, once its CSRF token matches ``bound_to``'s (else 403)."""
    services = services_of(request)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise StaleForm()
    raw = await read_body(request, services.settings.max_body_bytes)
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The form is malformed.") from None
    form = Form(pairs, repeatable)
    if not sessions.csrf_matches(services, bound_to, form.get(CSRF_FIELD)):
        raise StaleForm()
    return form


async def read_script_json(request: Request, bound_to: str) -> dict[str, Any]:
    """A console script's JSON POST, once its ``X-CSRF-Token`` matches (else 403)."""
    services = services_of(request)
    if not sessions.csrf_matches(services, bound_to, request.headers.get(CSRF_HEADER)):
        raise StaleForm()
    return await read_json(request, services.settings.max_body_bytes)


def text_field(body: Mapping[str, Any], name: str, *, limit: int = 20_000) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidRequest(f"The {name} field is missing or invalid.")
    return value
