"""The auditor API: auth, filters and cursor, export, checkpoints, proofs, keys, bad input."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from authority.context import Services
from authority.ledger.checkpoints import decode_hash, ledger_keyset, verify_checkpoint
from authority.ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from authority.management.api_keys import issue_operator_key
from tests.unit.ledger.records import EXAMPLES

from .ledgerdata import auditor_headers, fetch_export, populate

ROUTES = [
    "/v1/ledger/entries",
    "/v1/ledger/export",
    "/v1/ledger/checkpoint",
    "/v1/ledger/checkpoints",
    "/v1/ledger/proofs/inclusion?leaf_index=0&tree_size=1",
    "/v1/ledger/proofs/consistency?first=1&second=1",
]


@pytest.mark.parametrize("route", ROUTES)
async def test_auditor_or_admin_only(
    services: Services, client: httpx.AsyncClient, route: str
) -> None:
    await populate(services, count=3)
    assert (await client.get(route)).status_code == 401
    admin = await issue_operator_key(services, "admin", "t")
    ok = await client.get(route, headers={"Authorization": f"Bearer {admin.secret}"})
    assert ok.status_code == 200, ok.text
    auditor = await auditor_headers(services)
    assert (await client.get(route, headers=auditor)).status_code == 200


async def test_owner_keys_may_not_read_the_ledger(
    services: Services, client: httpx.AsyncClient
) -> None:
    admin = await issue_operator_key(services, "admin", "t")
    headers = {"Authorization": f"Bearer {admin.secret}"}
    owner = await client.post("/v1/owners", headers=headers, json={"name": "alice"})
    assert owner.status_code == 201, owner.text
    key = await client.post(
        f"/v1/owners/{owner.json()['id']}/api-keys", headers=headers, json={"label": "k"}
    )
    assert key.status_code == 201, key.text
    owner_headers = {"Authorization": f"Bearer {key.json()['api_key']}"}
    response = await client.get("/v1/ledger/entries", headers=owner_headers)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


async def test_entries_filters_and_stable_cursor(
    services: Services, client: httpx.AsyncClient
) -> None:
    size = await populate(services, count=3 * len(EXAMPLES))  # every kind once
    headers = await auditor_headers(services)

    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/ledger/entries", headers=headers, params=params)).json()
        seen.extend(item["leaf_index"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(size))

    response = await client.get(
        "/v1/ledger/entries", headers=headers, params={"agent": "agt_1", "limit": "500"}
    )
    items = response.json()["items"]
    assert items and all(item["entry"]["agent_id"] == "agt_1" for item in items)

    filters: list[tuple[dict[str, str], dict[str, str]]] = [
        ({"decision": "issued"}, {"decision": "issued"}),
        ({"kind": "kill_switch"}, {"kind": "kill_switch"}),
        ({"tool": "github.issues.list"}, {"tool": "github.issues.list"}),
        ({"delegation": "dlg_1"}, {"delegation_id": "dlg_1"}),
        ({"owner": "own_0", "decision": "denied"}, {"owner_id": "own_0", "decision": "denied"}),
    ]
    for params, expected in filters:
        got = (await client.get("/v1/ledger/entries", headers=headers, params=params)).json()
        assert got["items"], params
        for item in got["items"]:
            assert {k: item["entry"].get(k) for k in expected} == expected, params

    now = services.now()
    late = (
        await client.get("/v1/ledger/entries", headers=headers, params={"since": str(now + 20)})
    ).json()["items"]
    assert late and all(item["entry"]["time"] >= now + 20 for item in late)
    none = (
        await client.get(
            "/v1/ledger/entries",
            headers=headers,
            params={"since": "2001-01-01T00:00:00Z", "until": "2001-01-02T00:00:00+00:00"},
        )
    ).json()
    assert none == {"items": [], "next_cursor": None}


async def test_export_proofs_and_checkpoints_verify(
    services: Services, client: httpx.AsyncClient
) -> None:
    size = await populate(services, count=20)
    headers = await auditor_headers(services)
    keys = ledger_keyset((await client.get("/v1/ledger/keys")).json())

    latest = (await client.get("/v1/ledger/checkpoint", headers=headers)).json()
    checkpoint = verify_checkpoint(latest["signed"], keys)
    assert checkpoint.tree_size == latest["tree_size"] == size

    lines = await fetch_export(client, headers)
    assert len(lines) == size
    bodies = [orjson.loads(line)["body"] for line in lines]

    for index in (0, size // 2, size - 1):
        proof = (
            await client.get(
                "/v1/ledger/proofs/inclusion",
                headers=headers,
                params={"leaf_index": index, "tree_size": size},
            )
        ).json()
        path = [decode_hash(h) for h in proof["inclusion_path"]]
        verify_inclusion(leaf_hash(bodies[index].encode()), index, size, path, checkpoint.root_hash)

    older = (await client.get("/v1/ledger/checkpoints", headers=headers)).json()["items"][0]
    first = verify_checkpoint(older["signed"], keys)
    proof = (
        await client.get(
            "/v1/ledger/proofs/consistency",
            headers=headers,
            params={"first": first.tree_size, "second": size},
        )
    ).json()
    verify_consistency(
        first.tree_size,
        size,
        first.root_hash,
        checkpoint.root_hash,
        [decode_hash(h) for h in proof["consistency_path"]],
    )

    part = await client.get("/v1/ledger/export", headers=headers, params={"start": "5", "end": "9"})
    assert [orjson.loads(x)["leaf_index"] for x in part.text.splitlines()] == [5, 6, 7, 8]
    assert part.headers["content-type"].startswith("application/jsonl")


async def test_keys_are_the_ledger_keys(services: Services, client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/ledger/keys")
    assert response.status_code == 200
    kids = {key["kid"] for key in response.json()["keys"]}
    assert kids == {services.keyring.active_kid("ledger")}
    assert services.keyring.active_kid("token") not in kids
    assert all("d" not in key for key in response.json()["keys"])


async def test_no_checkpoint_yet_is_404(services: Services, client: httpx.AsyncClient) -> None:
    headers = await auditor_headers(services)
    response = await client.get("/v1/ledger/checkpoint", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


BAD = [
    ("/v1/ledger/entries", {"limit": "0"}),
    ("/v1/ledger/entries", {"limit": "-1"}),
    ("/v1/ledger/entries", {"limit": "1e3"}),
    ("/v1/ledger/entries", {"cursor": "abc"}),
    ("/v1/ledger/entries", {"cursor": "9" * 30}),
    ("/v1/ledger/entries", {"since": "yesterday"}),
    ("/v1/ledger/entries", {"since": "2030-01-01T00:00:00"}),  # no offset
    ("/v1/ledger/entries", {"since": "200", "until": "100"}),
    ("/v1/ledger/entries", {"since": "9999999999999999999"}),  # beyond a 64-bit column
    ("/v1/ledger/entries", {"until": "9999999999999999999"}),
    (
        "/v1/ledger/entries",
        {"since": "9999-12-31T23:59:59+00:00", "until": "0001-01-01T00:00:00+14:00"},
    ),
    ("/v1/ledger/entries", {"decision": "maybe"}),
    ("/v1/ledger/entries", {"kind": "grant_issued"}),
    ("/v1/ledger/entries", {"agent": "a" * 3000}),
    ("/v1/ledger/entries", {"color": "red"}),
    ("/v1/ledger/export", {"end": "100000"}),
    ("/v1/ledger/export", {"start": "5", "end": "2"}),
    ("/v1/ledger/export", {"start": "x"}),
    ("/v1/ledger/checkpoints", {"cursor": "-3"}),
    ("/v1/ledger/proofs/inclusion", {}),
    ("/v1/ledger/proofs/inclusion", {"leaf_index": "0"}),
    ("/v1/ledger/proofs/inclusion", {"leaf_index": "5", "tree_size": "5"}),
    ("/v1/ledger/proofs/inclusion", {"leaf_index": "0", "tree_size": "0"}),
    ("/v1/ledger/proofs/inclusion", {"leaf_index": "0", "tree_size": "100000"}),
    ("/v1/ledger/proofs/inclusion", {"leaf_index": "0", "tree_size": "9223372036854775808"}),
    ("/v1/ledger/proofs/inclusion", {"leaf_index": "\u0661", "tree_size": "2"}),
    ("/v1/ledger/proofs/consistency", {"first": "0", "second": "3"}),
    ("/v1/ledger/proofs/consistency", {"first": "4", "second": "3"}),
    ("/v1/ledger/proofs/consistency", {"first": "1", "second": "100000"}),
    ("/v1/ledger/proofs/consistency", {"first": "1"}),
]


@pytest.mark.parametrize(("route", "params"), BAD)
async def test_bad_parameters_are_400(
    services: Services, client: httpx.AsyncClient, route: str, params: dict[str, str]
) -> None:
    await populate(services, count=3)
    headers = await auditor_headers(services)
    response = await client.get(route, headers=headers, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


async def test_repeated_parameter_is_400(services: Services, client: httpx.AsyncClient) -> None:
    headers = await auditor_headers(services)
    response = await client.get("/v1/ledger/entries?limit=1&limit=2", headers=headers)
    assert response.status_code == 400


def test_hashes_are_unpadded_base64url() -> None:
    value = base64.urlsafe_b64encode(b"\xff" * 32).rstrip(b"=").decode()
    assert decode_hash(value) == b"\xff" * 32
    for bad in (value + "=", value[:-1], value.replace("_", "/"), 7, None):
        with pytest.raises(ValueError, match="base64url"):
            decode_hash(bad)
