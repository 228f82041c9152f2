"""Signing in and out, enrolment, the step-up challenge, and the console's static files.

The ceremonies' first halves answer JSON to the console's own scripts
(``static/passkeys.js``), which run the browser's WebAuthn API and post the result back.
Before sign-in the CSRF token is the ceremony cookie's; after, the session's.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.console import ceremonies, sessions
from authority.errors import InvalidRequest

from .http import (
    CEREMONY_COOKIE,
    ROLE_HOME,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    clear_cookie,
    json_answer,
    json_view,
    page,
    read_cookie,
    read_form,
    read_script_json,
    redirect,
    services_of,
    set_cookie,
    signed_in,
    text_field,
    view,
)

STATIC: Final = {
    "console.css": "text/css; charset=utf-8",
    "passkeys.js": "text/javascript; charset=utf-8",
    "step-up.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
}
_FILES: Final = {
    name: resources.files("authority.console").joinpath("static", name).read_bytes()
    for name in STATIC
}


async def _ceremony(request: Request) -> tuple[str, str | None]:
    """The browser's ceremony binding, and a new cookie to set when it had none."""
    services = services_of(request)
    cookie = read_cookie(request, services, CEREMONY_COOKIE)
    fresh = None
    if not cookie or len(cookie) > 128:
        cookie = fresh = sessions.new_ceremony_cookie()
    return sessions.binding(services, cookie), fresh


def _with_ceremony_cookie(request: Request, response: Response, fresh: str | None) -> Response:
    if fresh is not None:
        services = services_of(request)
        set_cookie(
            response, services, CEREMONY_COOKIE, fresh, services.settings.console_ceremony_timeout
        )
    return response


async def _signed_in_response(request: Request, cookie: str, home: str) -> Response:
    services = services_of(request)
    response = json_answer({"redirect": home})
    set_cookie(
        response, services, SESSION_COOKIE, cookie, services.settings.console_session_max_lifetime
    )
    clear_cookie(response, services, CEREMONY_COOKIE)
    return response


# --- pages --------------------------------------------------------------------------------
@view
async def home(request: Request) -> Response:
    signed = await signed_in(request)
    return redirect(ROLE_HOME[signed.person.role])


@view
async def sign_in_page(request: Request) -> Response:
    services = services_of(request)
    bound_to, fresh = await _ceremony(request)
    response = page(request, "sign_in.html", {}, csrf=sessions.csrf_token(services, bound_to))
    return _with_ceremony_cookie(request, response, fresh)


@view
async def enrol_page(request: Request) -> Response:
    services = services_of(request)
    bound_to, fresh = await _ceremony(request)
    response = page(request, "enrol.html", {}, csrf=sessions.csrf_token(services, bound_to))
    return _with_ceremony_cookie(request, response, fresh)


@view
async def sign_out(request: Request) -> Response:
    services = services_of(request)
    signed = await signed_in(request)
    await read_form(request, signed.session.id)
    await sessions.end(services, read_cookie(request, services, SESSION_COOKIE))
    response = redirect("/console/sign-in")
    clear_cookie(response, services, SESSION_COOKIE)
    return response


# --- the ceremonies (JSON, for the console's scripts) ---------------------------------------
async def _bound(request: Request) -> str:
    services = services_of(request)
    cookie = read_cookie(request, services, CEREMONY_COOKIE)
    if not cookie or len(cookie) > 128:
        raise ceremonies.PasskeyRefused("Reload the page and try again.")
    return sessions.binding(services, cookie)


@json_view
async def sign_in_options(request: Request) -> Response:
    bound_to = await _bound(request)
    await read_script_json(request, bound_to)
    options = await ceremonies.sign_in_options(services_of(request), bound_to)
    return Response(options, media_type="application/json", headers=SECURITY_HEADERS)


@json_view
async def sign_in(request: Request) -> Response:
    services = services_of(request)
    bound_to = await _bound(request)
    body = await read_script_json(request, bound_to)
    person = await ceremonies.sign_in(services, bound_to, text_field(body, "credential"))
    cookie = await sessions.start(services, person)
    return await _signed_in_response(request, cookie, ROLE_HOME[person.role])


@json_view
async def enrol_options(request: Request) -> Response:
    bound_to = await _bound(request)
    body = await read_script_json(request, bound_to)
    secret = text_field(body, "secret", limit=200)
    options = await ceremonies.enrolment_options(services_of(request), bound_to, secret)
    return Response(options, media_type="application/json", headers=SECURITY_HEADERS)


@json_view
async def enrol(request: Request) -> Response:
    services = services_of(request)
    bound_to = await _bound(request)
    body = await read_script_json(request, bound_to)
    secret = text_field(body, "secret", limit=200)
    person = await ceremonies.enrol(services, bound_to, secret, text_field(body, "credential"))
    cookie = await sessions.start(services, person)
    return await _signed_in_response(request, cookie, ROLE_HOME[person.role])


@json_view
async def step_up_options(request: Request) -> Response:
    """A challenge for one action of the signed-in person (``ceremonies.confirm``)."""
    signed = await signed_in(request)
    body = await read_script_json(request, signed.session.id)
    name, target = text_field(body, "action", limit=20), text_field(body, "target", limit=100)
    if name not in ceremonies.STEP_UP_ACTIONS:
        raise InvalidRequest("The action field is invalid.")
    options = await ceremonies.step_up_options(
        services_of(request), signed.session.id, signed.person, ceremonies.action(name, target)
    )
    return Response(options, media_type="application/json", headers=SECURITY_HEADERS)


# --- static files -------------------------------------------------------------------------
async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        return Response(b"", status_code=404, headers=SECURITY_HEADERS)
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=300"}
    return Response(_FILES[name], media_type=STATIC[name], headers=headers)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/sign-in", sign_in_page, methods=["GET"]),
    Route("/sign-in/options", sign_in_options, methods=["POST"]),
    Route("/sign-in", sign_in, methods=["POST"]),
    Route("/enrol", enrol_page, methods=["GET"]),
    Route("/enrol/options", enrol_options, methods=["POST"]),
    Route("/enrol", enrol, methods=["POST"]),
    Route("/sign-out", sign_out, methods=["POST"]),
    Route("/step-up", step_up_options, methods=["POST"]),
    Route("/static/{name}", static, methods=["GET"]),
]
