"""A call's arguments bound to its token: the RFC 8785 digest in the token, the token
endpoint's answer, introspection and the ledger; never the arguments themselves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select

from authority.clock import FrozenClock
from authority.sdk.arguments import digest
from authority.storage.schema import grants, ledger_entries
from tests.integration.approvals.support import world_with
from tests.integration.grants.test_token_exchange import verify_with_discovery
from tests.revocation_support import introspect
from tests.support import World

ARGS = {"title": "Crash on start", "labels": ["bug", "p1"], "body": {"lines": 3}}


def details(**members: Any) -> str:
    detail = {"type": "tool_call", "tool": "github.issues.create", "resource": "acme/web"}
    return json.dumps([{**detail, "action": "create", **members}])


async def exchange(world: World, raw: str | None = None, **members: Any) -> httpx.Response:
    return await world.exchange(authorization_details=raw or details(**members))


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body.get("error_description", "")


async def grant_count(world: World) -> int:
    async with world.services.engine.connect() as conn:
        return len((await conn.execute(select(grants.c.id))).all())


async def grant_entries(world: World) -> list[dict[str, Any]]:
    async with world.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(ledger_entries.c.body, ledger_entries.c.version)
                .where(ledger_entries.c.kind == "grant")
                .order_by(ledger_entries.c.id)
            )
        ).all()
    return [json.loads(r.body) for r in rows]


# --- the digest, wherever the call is named ---------------------------------------------------
async def test_the_digest_is_in_the_token_the_answer_introspection_and_the_ledger(
    world: World,
) -> None:
    response = await exchange(world, arguments=ARGS)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = digest(ARGS)
    [answered] = body["authorization_details"]
    assert answered["arguments_digest"] == expected
    assert "arguments" not in answered
    claims = await verify_with_discovery(world.client, body["access_token"])
    [detail] = claims["authorization_details"]
    assert detail == {
        "type": "tool_call",
        "tool": "github.issues.create",
        "resource": "acme/web",
        "action": "create",
        "locations": ["https://tools.example.test"],
        "arguments_digest": expected,
    }
    introspected = (await introspect(world, body["access_token"])).json()
    assert introspected["active"] is True
    assert introspected["authorization_details"][0]["arguments_digest"] == expected
    [entry] = await grant_entries(world)
    assert (entry["decision"], entry["version"], entry["arguments_digest"]) == (
        "issued",
        3,
        expected,
    )
    # The arguments themselves are nowhere: not in the token, the answer or the ledger.
    for text in (json.dumps(claims), response.text, json.dumps(entry)):
        assert "Crash on start" not in text


async def test_a_call_without_arguments_binds_none(world: World) -> None:
    response = await world.exchange()
    assert response.status_code == 200, response.text
    assert "arguments_digest" not in response.json()["authorization_details"][0]
    [entry] = await grant_entries(world)
    assert entry["version"] == 3 and "arguments_digest" not in entry


async def test_other_arguments_other_digest_same_arguments_same_digest(world: World) -> None:
    first = (await exchange(world, arguments=ARGS)).json()["authorization_details"][0]
    changed = {**ARGS, "title": "Crash on stop"}
    second = (await exchange(world, arguments=changed)).json()["authorization_details"][0]
    assert first["arguments_digest"] != second["arguments_digest"]
    # The same object written in another order and spacing is the same call (RFC 8785).
    raw = '[{"action":"create","type":"tool_call","tool":"github.issues.create",'
    raw += '"resource":"acme/web","arguments":{ "body":{"lines":3.0},'
    raw += '"labels":["bug","p1"], "title":"Crash on start"}}]'
    third = (await exchange(world, raw)).json()["authorization_details"][0]
    assert third["arguments_digest"] == first["arguments_digest"]


async def test_the_digest_alone_is_bound_as_sent(world: World) -> None:
    expected = digest(ARGS)
    response = await exchange(world, arguments_digest=expected)
    assert response.status_code == 200, response.text
    assert response.json()["authorization_details"][0]["arguments_digest"] == expected
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["authorization_details"][0]["arguments_digest"] == expected


async def test_both_forms_must_agree(world: World) -> None:
    agreeing = await exchange(world, arguments=ARGS, arguments_digest=digest(ARGS))
    assert agreeing.status_code == 200, agreeing.text
    assert agreeing.json()["authorization_details"][0]["arguments_digest"] == digest(ARGS)
    before = await grant_count(world)
    other = digest({**ARGS, "title": "x"})
    refused = await exchange(world, arguments=ARGS, arguments_digest=other)
    status, code, description = error(refused)
    assert (status, code) == (400, "invalid_authorization_details")
    assert "do not agree" in description
    assert other not in refused.text and "Crash on start" not in refused.text
    # A malformed request is not a decision: no grant row.
    assert await grant_count(world) == before


# --- what cannot be bound ----------------------------------------------------------------------
SECRET = "s3cr3t-value-never-echoed"
REFUSED = [
    (details(arguments=[SECRET]), "must be a JSON object"),
    (details(arguments=SECRET), "must be a JSON object"),
    (details(arguments=None), "must be a JSON object"),
    (details(arguments=7), "must be a JSON object"),
    # Not I-JSON: an integer beyond 2**53, a non-finite number, an unpaired surrogate.
    (details(arguments={"n": 2**60, "s": SECRET}), "canonical form"),
    (details(arguments={"s": SECRET}).replace('"s3cr3t', '"\\ud800s3cr3t'), "canonical form"),
    (details(arguments={"s": SECRET, "x": 1}).replace('"x": 1', '"x": NaN'), "canonical form"),
    (details(arguments={"s": SECRET, "x": 1}).replace('"x": 1', '"x": Infinity'), "canonical"),
    # Digests: the prefix, the length, the alphabet, the one spelling of 32 bytes.
    (details(arguments_digest="sha-512:" + "A" * 43), "arguments_digest must be"),
    (details(arguments_digest="sha-256:" + "A" * 42), "arguments_digest must be"),
    (details(arguments_digest="sha-256:" + "A" * 44), "arguments_digest must be"),
    (details(arguments_digest="sha-256:" + "A" * 42 + "="), "arguments_digest must be"),
    (details(arguments_digest="sha-256:" + "+" * 43), "arguments_digest must be"),
    (details(arguments_digest="sha-256:" + "A" * 42 + "B"), "arguments_digest must be"),
    (details(arguments_digest=SECRET), "arguments_digest must be"),
    (details(arguments_digest=None), "arguments_digest must be"),
    (details(arguments_digest=["sha-256:" + "A" * 43]), "arguments_digest must be"),
    (details(argument={"s": SECRET}), "unknown field"),
]


@pytest.mark.parametrize(("raw", "says"), REFUSED)
async def test_arguments_that_cannot_be_bound_are_refused_without_echo(
    world: World, raw: str, says: str
) -> None:
    before = await grant_count(world)
    response = await exchange(world, raw)
    status, code, description = error(response)
    assert (status, code) == (400, "invalid_authorization_details"), response.text
    assert says in description
    assert SECRET not in response.text and "s3cr3t" not in response.text
    assert await grant_count(world) == before


async def test_the_arguments_are_bounded_in_their_canonical_form(
    settings_factory: Any, clock: FrozenClock
) -> None:
    async with world_with(
        settings_factory(authorization_details_max_arguments_bytes=64), clock
    ) as w:
        fits = {"t": "x" * (64 - len('{"t":""}'))}
        assert len(json.dumps(fits, separators=(",", ":"))) == 64
        # Spacing does not count: the bound is on the canonical form, not on what was sent.
        spaced = json.dumps([{**json.loads(details())[0], "arguments": fits}], indent=8)
        assert (await exchange(w, spaced)).status_code == 200
        over = {"t": "x" * (65 - len('{"t":""}'))}
        response = await exchange(w, arguments=over)
        status, code, description = error(response)
        assert (status, code) == (400, "invalid_authorization_details")
        assert "exceed 64 bytes" in description and "xxxx" not in response.text


async def test_the_default_bound_is_16_kib(world: World) -> None:
    at = {"t": "x" * (16 * 1024 - len('{"t":""}'))}
    assert (await exchange(world, arguments=at)).status_code == 200
    over = {"t": "x" * (16 * 1024 + 1 - len('{"t":""}'))}
    assert error(await exchange(world, arguments=over))[1] == "invalid_authorization_details"


# --- Cedar reads the arguments -----------------------------------------------------------------
POLICY = """
@id("no-drop-in-sql")
forbid(principal, action, resource == Tool::"sql.query")
  when { context.arguments.sql like "*DROP*" };

@id("payments-up-to-100")
forbid(principal, action, resource == Tool::"payments.send")
  when { context.arguments.amount > 100 };

@id("no-wontfix")
forbid(principal, action, resource == Tool::"github.issues.create")
  when { context has arguments && context.arguments has labels
         && context.arguments.labels.contains("wontfix") };
"""


@pytest.fixture
async def ruled(settings_factory: Any, clock: FrozenClock, tmp_path: Path) -> AsyncIterator[World]:
    policy = tmp_path / "policy.cedar"
    policy.write_text(POLICY)
    async with world_with(settings_factory(policy_file=policy), clock) as world:
        await world.add_tool("sql.query", actions=["run"])
        await world.add_tool("payments.send", actions=["send"])
        await world.delegate(
            scope=[
                {"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]},
                {"tool": "sql.query", "resources": ["db/*"], "actions": ["run"]},
                {"tool": "payments.send", "resources": ["acct/*"], "actions": ["send"]},
            ]
        )
        yield world


def call(tool: str, resource: str, action: str, **members: Any) -> str:
    detail = {"type": "tool_call", "tool": tool, "resource": resource, "action": action}
    return json.dumps([{**detail, **members}])


async def sql(world: World, **members: Any) -> httpx.Response:
    return await world.exchange(
        authorization_details=call("sql.query", "db/main", "run", **members)
    )


async def pay(world: World, **members: Any) -> httpx.Response:
    raw = call("payments.send", "acct/1", "send", **members)
    return await world.exchange(authorization_details=raw)


def denied_by_policy(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json()["error"] == "invalid_scope"


async def reasons(world: World) -> list[str | None]:
    async with world.services.engine.connect() as conn:
        rows = (await conn.execute(select(grants.c.reason).order_by(grants.c.created_at))).all()
    return [r.reason for r in rows]


async def test_cedar_forbids_by_an_arguments_pattern(ruled: World) -> None:
    assert (await sql(ruled, arguments={"sql": "SELECT 1"})).status_code == 200
    assert denied_by_policy(await sql(ruled, arguments={"sql": "select 1; DROP TABLE users"}))
    # Cedar's like is case-sensitive: a rule meant for any case says so, or the gateway's
    # command rules (gateway.blocking) normalise first.
    assert (await sql(ruled, arguments={"sql": "drop table users"})).status_code == 200
    assert (await reasons(ruled)).count("policy_denied") == 1


async def test_cedar_compares_an_integer_argument(ruled: World) -> None:
    assert (await pay(ruled, arguments={"amount": 100})).status_code == 200
    assert (await pay(ruled, arguments={"amount": 100.0})).status_code == 200
    assert (await pay(ruled, arguments={"amount": -5})).status_code == 200
    assert denied_by_policy(await pay(ruled, arguments={"amount": 101}))
    assert denied_by_policy(await pay(ruled, arguments={"amount": 2**53 - 1}))


async def test_a_policy_reading_an_argument_the_call_lacks_denies(ruled: World) -> None:
    # A missing attribute is an evaluation error in Cedar; an error denies, never a 5xx.
    assert denied_by_policy(await pay(ruled, arguments={"to": "acct/2"}))
    assert denied_by_policy(await pay(ruled))  # no arguments at all
    assert denied_by_policy(await pay(ruled, arguments_digest=digest({"amount": 1})))
    assert denied_by_policy(await sql(ruled, arguments={"query": "DROP TABLE users"}))
    # A value of the wrong type is an error too: a string where a number is compared, a
    # number Cedar holds as a string (a fraction), a record where a string is matched.
    assert denied_by_policy(await pay(ruled, arguments={"amount": "50"}))
    assert denied_by_policy(await pay(ruled, arguments={"amount": 99.5}))
    assert denied_by_policy(await pay(ruled, arguments={"amount": None}))
    assert denied_by_policy(await sql(ruled, arguments={"sql": {"__entity": {"type": "Agent"}}}))
    assert set(await reasons(ruled)) == {"policy_denied"}


async def test_a_guarded_policy_lets_a_call_without_the_argument_through(ruled: World) -> None:
    assert (await ruled.exchange()).status_code == 200
    assert (await exchange(ruled, arguments={"title": "t"})).status_code == 200
    assert (await exchange(ruled, arguments={"labels": ["bug"]})).status_code == 200
    assert denied_by_policy(await exchange(ruled, arguments={"labels": ["bug", "wontfix"]}))
