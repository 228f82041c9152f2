"""``POST /v1/policies/dry-run``: the exchange's answer on the stored facts, and nothing
stored changes: no grant, no ledger entry, no call used, no JWT id spent, no rate window
counted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select

from authority.management.api_keys import issue_operator_key
from authority.storage.schema import used_jtis
from tests.support import World

from .support import FORBID_CREATE, counts, set_policy

CALL = {"tool": "github.issues.create", "resource": "acme/web", "action": "create"}


async def dry_run(world: World, key: str | None = None, **body: Any) -> Any:
    sent = {"delegation_id": world.delegation_id, **CALL, **body}
    return await world.client.post(
        "/v1/policies/dry-run", json=sent, headers=world.auth(key or world.admin)
    )


async def state(world: World) -> tuple[Any, ...]:
    """Everything a dry run could change: ledger and grants, the delegation's calls used,
    the spent JWT ids and this minute's rate window."""
    services = world.services
    delegation = await services.delegation_store.get(world.delegation_id, None)
    assert delegation is not None
    async with services.engine.connect() as conn:
        spent = (await conn.execute(select(func.count()).select_from(used_jtis))).scalar()
    window = f"rate:delegation:{world.delegation_id}:{services.now() // 60}"
    return (*await counts(world), delegation.calls_used, spent, await services.hot.get(window))


async def test_a_dry_run_answers_and_changes_nothing(world: World) -> None:
    await world.delegate(max_calls=5, rate_per_minute=10)
    # One real exchange first, so the counters have something to keep.
    assert (await world.exchange()).status_code == 200
    before = await state(world)
    assert before[2] == 1 and before[4] is not None

    allowed = await dry_run(world)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json() == {"decision": "allow", "reasons": [], "policy_version": 0}
    for key in (world.owner_key, world.admin):  # the delegation's owner may ask too
        assert (await dry_run(world, key=key)).json()["decision"] == "allow"
    outside = await dry_run(world, resource="other/repo")
    assert outside.json()["decision"] == "deny"
    assert outside.json()["reasons"] == ["resource_not_delegated"]
    assert await state(world) == before

    await set_policy(world, FORBID_CREATE)
    before = await state(world)
    denied = (await dry_run(world, arguments={"title": "x"})).json()
    assert denied == {
        "decision": "deny",
        "reasons": ["policy_denied", "policy:no-issues-in-web"],
        "policy_version": 1,
    }
    assert await state(world) == before


async def test_a_dry_run_reads_the_call_cap_without_counting(world: World) -> None:
    await world.delegate(max_calls=1)
    assert (await world.exchange()).status_code == 200
    before = await state(world)
    answer = (await dry_run(world)).json()
    assert (answer["decision"], answer["reasons"]) == ("deny", ["call_cap_exhausted"])
    assert await state(world) == before


async def test_who_may_ask(world: World) -> None:
    auditor = (await issue_operator_key(world.services, "auditor", "audits")).secret
    assert (await dry_run(world, key=auditor)).status_code == 403
    other = await world.post("/v1/owners", world.admin, {"name": "someone else"})
    other_key = (await world.post(f"/v1/owners/{other['id']}/api-keys", world.admin, {}))["api_key"]
    assert (await dry_run(world, key=other_key)).status_code == 404  # not theirs: not there
    assert (await dry_run(world, delegation_id="dlg_nope")).status_code == 404
    assert (await dry_run(world, delegation_id="not an id!")).status_code == 404
    assert (await dry_run(world, arguments=[1])).status_code == 400
    assert (await dry_run(world, surprise=True)).status_code == 400


async def test_the_log_line_escapes_what_a_policy_names(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    forged = '@id("x\\nauthority.policy forged line") forbid(principal, action, resource);'
    assert (await set_policy(world, forged)).status_code == 201
    with caplog.at_level(logging.INFO, logger="authority.policy"):
        answer = (await dry_run(world)).json()
    assert answer["reasons"][-1] == "policy:x\nauthority.policy forged line"
    [line] = [r.getMessage() for r in caplog.records if "policy dry run" in r.getMessage()]
    assert "\n" not in line and "policy:x\\nauthority.policy forged line" in line
