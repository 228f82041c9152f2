"""The console's people in the management API: an admin enrols a person over ``/v1``.

``POST /v1/console/people`` makes an invited person and answers their one-time
enrolment link, shown this once; ``POST /v1/console/people/{person_id}/enrolment`` makes
another (a new passkey); ``GET /v1/console/people`` lists them;
``DELETE /v1/console/people/{person_id}`` retires one. Admin API keys only; the rules
are ``authority.console.people``'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.console import people
from authority.endpoints.guard import endpoint
from authority.endpoints.rest import caller, created_response, ok, path_param, read_model
from authority.management.auth import ADMIN
from authority.storage.console import Person


def _person(person: Person) -> dict[str, Any]:
    view = dataclasses.asdict(person)
    view.pop("owner_status")
    return view


def _issued(issued: people.Issued) -> dict[str, Any]:
    return {
        **_person(issued.person),
        "enrolment_url": issued.link,
        "enrolment_expires_at": issued.expires_at,
    }


@endpoint
async def create_person(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, people.PersonCreate)
    issued = await people.create(services, principal, body)
    return created_response(f"/v1/console/people/{issued.person.id}", _issued(issued))


@endpoint
async def list_people(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    found = await people.list_people(services, principal)
    return ok({"items": [_person(p) for p in found], "next_cursor": None})


@endpoint
async def new_enrolment(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    issued = await people.enrol_again(services, principal, path_param(request, "person_id"))
    return ok(_issued(issued))


@endpoint
async def retire_person(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    person = await people.retire(services, principal, path_param(request, "person_id"))
    return ok(_person(person))


routes = [
    Route("/v1/console/people", list_people, methods=["GET"]),
    Route("/v1/console/people", create_person, methods=["POST"]),
    Route("/v1/console/people/{person_id}/enrolment", new_enrolment, methods=["POST"]),
    Route("/v1/console/people/{person_id}", retire_person, methods=["DELETE"]),
]
