"""The console in real headless Chromium, against a real authority on loopback.

Passkeys are a virtual WebAuthn authenticator (Chrome DevTools Protocol), user verified,
for enrolment, sign-in and every step-up. One authority and one browser serve the
module; each test has its own owner (or auditor) and its own browser profile.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from .browser import (
    CHROMIUM,
    Authority,
    Owner,
    authority,
    chromium,
    csrf,
    enrol,
    new_owner,
    new_person,
    person_page,
    registries,
)

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Chromium is not installed (scripts/browser.sh)"
)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    with authority(tmp_path_factory.mktemp("browser")) as a:
        registries(a)
        yield a


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with person_page(browser) as p:
        yield p


def _pending(owner: Owner) -> str:
    response = owner.exchange("deploy.run", "prod/web", "run")
    assert response.status_code == 200, response.text
    auth_req_id: str = response.json()["auth_req_id"]
    return auth_req_id


def test_an_owner_approves_a_pending_call_and_the_agent_gets_its_token(
    running: Authority, page: Page
) -> None:
    owner = new_owner(running)
    auth_req_id = _pending(owner)
    enrol(page, owner.link)
    assert page.url.endswith("/console/owner/approvals")
    approval = page.locator("article.approval")
    expect(approval).to_have_count(1)
    expect(approval).to_contain_text("deploy.run")
    expect(approval).to_contain_text("prod/web")
    assert owner.poll(auth_req_id).json()["error"] == "authorization_pending"
    page.get_by_role("button", name="Approve with passkey").click()
    page.wait_for_url("**/console/owner/approvals?done=approved")
    expect(page.get_by_role("status").first).to_contain_text("Approved")
    token = owner.poll(auth_req_id)
    assert token.status_code == 200, token.text
    assert token.json()["token_type"].lower() in ("bearer", "dpop")


def test_the_kill_switch_refuses_the_agents_next_exchange(running: Authority, page: Page) -> None:
    owner = new_owner(running)
    assert owner.exchange("github.issues.create", "acme/web", "create").status_code == 200
    enrol(page, owner.link)
    page.goto(running.url + "/console/owner/kill")
    page.get_by_label("Why (recorded in the ledger)").fill("the agent's key leaked")
    page.get_by_role("button", name="Stop all my agents").click()
    expect(page.get_by_role("heading", name="Everything is stopped")).to_be_visible(timeout=15_000)
    expect(page.locator(".time-to-contain")).to_contain_text(" ms")
    refused = owner.exchange("github.issues.create", "acme/web", "create")
    assert refused.status_code != 200, refused.text


def test_an_auditor_signs_in_again_and_filters_the_ledger(running: Authority, page: Page) -> None:
    owner = new_owner(running)
    assert owner.exchange("github.issues.create", "acme/web", "create").status_code == 200
    assert owner.exchange("github.issues.create", "elsewhere/x", "create").status_code == 400
    enrol(page, new_person(running, "auditor"))
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/sign-in")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url("**/console/ledger")
    time.sleep(0.5)  # the sequencer places the newest entries in the tree
    page.get_by_label("Owner id").fill(owner.owner_id)
    page.get_by_label("Kind").select_option("grant")
    page.get_by_label("Decision").select_option("denied")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/ledger?*")
    rows = page.locator("table.ledger tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("denied")
    rows.first.get_by_role("link").click()
    expect(page.locator(".verified")).to_contain_text("Verified", timeout=10_000)


def test_a_session_without_step_up_cannot_approve(running: Authority, page: Page) -> None:
    owner = new_owner(running)
    auth_req_id = _pending(owner)
    enrol(page, owner.link)
    approval_id = page.locator("article.approval form[data-step-up]").get_attribute("data-target")
    # The session's own cookie and CSRF token, but no passkey assertion.
    response = page.request.post(
        f"{running.url}/console/owner/approvals/{approval_id}/approve",
        form={"csrf": csrf(page), "passkey": ""},
    )
    assert response.status == 403
    assert owner.poll(auth_req_id).json()["error"] == "authorization_pending"


def test_a_post_without_the_csrf_token_is_refused(running: Authority, page: Page) -> None:
    owner = new_owner(running)
    enrol(page, owner.link)
    response = page.request.post(
        f"{running.url}/console/owner/agents/{owner.agent_id}/quarantine", form={"reason": "x"}
    )
    assert response.status == 403
    assert owner.exchange("github.issues.create", "acme/web", "create").status_code == 200


def test_a_stored_xss_payload_in_an_agent_name_renders_as_text(
    running: Authority, page: Page
) -> None:
    payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    owner = new_owner(running, agent_name=payload)
    _pending(owner)
    dialogs: list[str] = []

    def seen(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)
    enrol(page, owner.link)
    expect(page.locator("article.approval .agent-name")).to_have_text(payload)
    page.goto(running.url + "/console/owner/agents")
    expect(page.locator(".agent-name").first).to_have_text(payload)
    assert page.evaluate("window.__xss") is None
    assert page.locator("article img").count() == 0
    assert dialogs == []


LABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter(el => el.type !== 'hidden')
    .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
    .map(el => el.name || el.id)"""


def _tab_to(page: Page, name: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement && document.activeElement.textContent")
        if focused and focused.strip() == name:
            return
    raise AssertionError(f"{name!r} is not reachable with Tab")


def test_accessibility_basics(running: Authority, browser: Browser) -> None:
    owner = new_owner(running)
    auth_req_id = _pending(owner)
    with person_page(browser) as page:
        enrol(page, owner.link)
        for path in (
            "/console/owner/approvals",
            "/console/owner/agents",
            "/console/owner/delegations",
            "/console/owner/delegations/new",
            "/console/owner/kill",
            "/console/owner/activity",
        ):
            page.goto(running.url + path)
            assert page.evaluate(LABELLED) == [], path
        # Approve with the keyboard alone: Tab to the button, Enter.
        page.goto(running.url + "/console/owner/approvals")
        _tab_to(page, "Approve with passkey")
        page.keyboard.press("Enter")
        page.wait_for_url("**/console/owner/approvals?done=approved")
        assert owner.poll(auth_req_id).status_code == 200
        # The kill switch: type the reason, Tab to the button, Space.
        page.goto(running.url + "/console/owner/kill")
        page.get_by_label("Why (recorded in the ledger)").fill("keyboard test")
        page.get_by_label("Why (recorded in the ledger)").focus()
        _tab_to(page, "Stop all my agents")
        page.keyboard.press("Space")
        expect(page.get_by_role("heading", name="Everything is stopped")).to_be_visible(
            timeout=15_000
        )
    with person_page(browser) as page:
        enrol(page, running.admin_link)
        for path in (
            "/console/admin/tools",
            "/console/admin/servers",
            "/console/admin/keys",
            "/console/admin/people",
            "/console/ledger",
            "/console/checkpoints",
        ):
            page.goto(running.url + path)
            assert page.evaluate(LABELLED) == [], path
