"""Enrolment, passkey sign-in, sessions and CSRF: what stands between a browser and a page."""

from __future__ import annotations

import httpx

from .conftest import Console


async def test_an_enrolled_person_is_signed_in_and_sees_their_home(console: Console) -> None:
    owner = await console.owner()
    home = await owner.client.get("/console")
    assert home.status_code == 303
    assert home.headers["location"] == "/console/owner/approvals"


async def test_sign_in_with_the_passkey_in_a_new_browser(console: Console) -> None:
    owner = await console.owner()
    again = console.browser()
    again.passkey = owner.passkey
    response = await again.sign_in()
    assert response.status_code == 200, response.text
    assert response.json() == {"redirect": "/console/owner/approvals"}
    assert (await again.client.get("/console")).status_code == 303


async def test_an_enrolment_link_works_once(console: Console) -> None:
    made = await console.world.post(
        "/v1/console/people", console.world.admin, {"name": "auditor-1", "role": "auditor"}
    )
    first = console.browser()
    assert (await first.enrol(made["enrolment_url"])).status_code == 200
    second = console.browser()
    await second.open("/console/enrol")
    secret = made["enrolment_url"].split("#", 1)[1]
    options = await second.script("/console/enrol/options", {"secret": secret})
    assert options.status_code == 401


async def test_a_page_without_a_session_sends_to_sign_in(console: Console) -> None:
    stranger = console.browser()
    response = await stranger.client.get("/console/owner/approvals")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in"


async def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    owner = await console.owner()
    response = await owner.client.post("/console/sign-out", data={})
    assert response.status_code == 403
    response = await owner.client.post("/console/sign-out", data={"csrf": "x" * 64})
    assert response.status_code == 403
    # Still signed in: nothing was done.
    assert (await owner.client.get("/console")).status_code == 303


async def test_a_script_request_without_the_csrf_header_is_refused(console: Console) -> None:
    stranger = console.browser()
    await stranger.open("/console/sign-in")
    response = await stranger.client.post("/console/sign-in/options", json={})
    assert response.status_code == 403


async def test_cookies_are_http_only_and_same_site_strict(console: Console) -> None:
    browser = console.browser()
    response = await browser.client.get("/console/sign-in")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


async def test_pages_carry_the_strict_content_security_policy(console: Console) -> None:
    response = await console.browser().client.get("/console/sign-in")
    assert response.headers["content-security-policy"] == (
        "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    )
    assert "<script>" not in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_sign_out_ends_the_session(console: Console) -> None:
    owner = await console.owner()
    await owner.open("/console/owner/approvals")
    response = await owner.submit("/console/sign-out")
    assert response.status_code == 303
    assert (await owner.client.get("/console")).headers["location"] == "/console/sign-in"


async def test_the_api_route_enrols_only_with_an_admin_key(console: Console) -> None:
    world = console.world
    response = await world.client.post(
        "/v1/console/people",
        json={"name": "x", "role": "auditor"},
        headers=world.auth(world.owner_key),
    )
    assert response.status_code == 403
    response = await world.client.post("/v1/console/people", json={"name": "x", "role": "auditor"})
    assert response.status_code == 401
    assert isinstance(response, httpx.Response)


async def test_a_passkey_without_user_verification_is_refused(console: Console) -> None:
    owner = await console.owner()
    again = console.browser()
    again.passkey = owner.passkey
    owner.passkey.user_verified = False
    response = await again.sign_in()
    assert response.status_code == 401
    assert (await again.client.get("/console")).headers["location"] == "/console/sign-in"


async def test_an_assertion_made_for_another_origin_is_refused(console: Console) -> None:
    owner = await console.owner()
    again = console.browser()
    await again.open("/console/sign-in")
    options = await again.script("/console/sign-in/options", {})
    forged = owner.passkey.get(options.json(), origin="https://phish.example")
    response = await again.script("/console/sign-in", {"credential": forged})
    assert response.status_code == 401


async def test_a_session_ends_when_idle_and_at_its_lifetime(console: Console) -> None:
    settings = console.world.services.settings
    clock = console.world.clock
    owner = await console.owner()
    clock.advance(settings.console_session_idle_timeout - 1)
    assert (await owner.client.get("/console")).headers["location"] != "/console/sign-in"
    clock.advance(settings.console_session_idle_timeout)
    assert (await owner.client.get("/console")).headers["location"] == "/console/sign-in"
    # Busy all along, a session still ends at its lifetime.
    busy = await console.owner()
    step = settings.console_session_idle_timeout - 1
    for _ in range(settings.console_session_max_lifetime // step):
        clock.advance(step)
        await busy.client.get("/console")
    clock.advance(step)
    assert (await busy.client.get("/console")).headers["location"] == "/console/sign-in"
