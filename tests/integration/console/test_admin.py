"""The admin's console: tools, resource servers, signing keys, people and roles."""

from __future__ import annotations

import re

from .conftest import Console


async def test_an_admin_registers_a_tool_changes_its_tier_and_retires_it(console: Console) -> None:
    admin = await console.person("admin")
    page = await admin.open("/console/admin/tools")
    assert "github.issues.create" in page.text
    response = await admin.submit(
        "/console/admin/tools",
        name="calendar.events.create",
        resource_server_id=console.world.server_id,
        actions="create, read",
        read_actions="read",
        risk_tier="1",
    )
    assert response.status_code == 303, response.text
    listed = await console.world.client.get(
        "/v1/tools", headers=console.world.auth(console.world.admin)
    )
    [tool] = [t for t in listed.json()["items"] if t["name"] == "calendar.events.create"]
    assert (tool["risk_tier"], tool["approval_required"]) == (1, False)
    await admin.open("/console/admin/tools")
    response = await admin.submit(
        f"/console/admin/tools/{tool['id']}", risk_tier="3", approval_required="on"
    )
    assert response.status_code == 303
    changed = await console.world.client.get(
        f"/v1/tools/{tool['id']}", headers=console.world.auth(console.world.admin)
    )
    assert (changed.json()["risk_tier"], changed.json()["approval_required"]) == (3, True)
    response = await admin.submit(f"/console/admin/tools/{tool['id']}/retire")
    assert response.status_code == 303
    retired = await console.world.client.get(
        f"/v1/tools/{tool['id']}", headers=console.world.auth(console.world.admin)
    )
    assert retired.json()["status"] == "retired"


async def test_a_resource_servers_secret_is_shown_once(console: Console) -> None:
    admin = await console.person("admin")
    await admin.open("/console/admin/servers")
    response = await admin.submit(
        "/console/admin/servers", name="calendar", audience="https://calendar.example.test"
    )
    assert response.status_code == 201, response.text
    secret = re.search(r'id="client-secret" class="secret" readonly value="([^"]+)"', response.text)
    assert secret is not None
    again = await admin.open("/console/admin/servers")
    assert secret.group(1) not in again.text
    assert "calendar.example.test" in again.text


async def test_the_signing_keys_and_their_rotation(console: Console) -> None:
    admin = await console.person("admin")
    page = await admin.open("/console/admin/keys")
    assert page.text.count("<td>token</td>") == 1
    response = await admin.submit("/console/admin/keys/rotate", purpose="token")
    assert response.status_code == 303
    page = await admin.open("/console/admin/keys")
    assert page.text.count("<td>token</td>") == 2
    assert ">next (in " in page.text
    response = await admin.submit("/console/admin/keys/rotate", purpose="token")
    assert response.status_code == 409


async def test_an_admin_enrols_and_retires_a_person(console: Console) -> None:
    admin = await console.person("admin")
    await admin.open("/console/admin/people")
    response = await admin.submit(
        "/console/admin/people", name="Ada", role="owner", owner_id=console.world.owner_id
    )
    assert response.status_code == 201, response.text
    link = re.search(r'id="enrolment-link" class="secret" readonly value="([^"]+)"', response.text)
    assert link is not None
    assert "/console/enrol#enr_" in link.group(1)
    ada = console.browser()
    assert (await ada.enrol(link.group(1))).status_code == 200
    assert (await ada.open("/console/owner/approvals")).status_code == 200
    page = await admin.open("/console/admin/people")
    assert link.group(1) not in page.text
    [ada_id] = re.findall(r"/console/admin/people/(per_[0-9a-f]+)/retire", page.text)
    response = await admin.submit(f"/console/admin/people/{ada_id}/retire")
    assert response.status_code == 303
    assert (await ada.client.get("/console/owner/approvals")).status_code == 303  # signed out


async def test_the_admin_pages_are_for_admins(console: Console) -> None:
    owner = await console.owner()
    auditor = await console.person("auditor")
    for path in (
        "/console/admin/tools",
        "/console/admin/servers",
        "/console/admin/keys",
        "/console/admin/people",
    ):
        assert (await owner.open(path)).status_code == 403
        assert (await auditor.open(path)).status_code == 403
