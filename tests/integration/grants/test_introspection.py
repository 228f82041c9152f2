"""Token introspection (RFC 7662) as a resource server sees it: one "yes", many identical "no"s."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select, update

from authority.storage.schema import delegations, grants, owners, resource_servers, tools
from tests.revocation_support import (
    INACTIVE,
    INTROSPECT,
    Server,
    add_server,
    basic,
    client_assertion,
    introspect,
    is_active,
    issue,
    revoke_as_server,
)
from tests.support import ISSUER, RS_AUDIENCE, AgentKey, World


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# --- the one "yes" -----------------------------------------------------------------------------
async def test_active_token_answers_its_binding_claims(world: World) -> None:
    token = await issue(world)
    response = await introspect(world, token)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    claims = unverified(token)
    assert body["active"] is True
    for name in (
        "iss",
        "sub",
        "aud",
        "client_id",
        "act",
        "delegation_id",
        "intent",
        "authorization_details",
        "exp",
        "iat",
        "jti",
    ):
        assert body[name] == claims[name], name
    assert body["sub"] == world.owner_id
    assert body["act"] == {"sub": world.agent_id}
    assert body["aud"] == RS_AUDIENCE
    assert body["delegation_id"] == world.delegation_id
    assert body["token_type"] == "Bearer"
    assert "scope" not in body
    assert "cnf" not in body


async def test_dpop_bound_token_answers_cnf_and_dpop_type(world: World) -> None:
    holder = AgentKey()
    token = await issue(world, headers={"DPoP": holder.dpop_proof(world.clock.now())})
    body = (await introspect(world, token)).json()
    assert body["active"] is True
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == unverified(token)["cnf"]


async def test_client_secret_post_authenticates(world: World) -> None:
    server = await add_server(world, "https://post.example.test", method="client_secret_post")
    assert server.secret is not None
    response = await world.client.post(
        INTROSPECT,
        data={"token": "x.y.z", "client_id": server.id, "client_secret": server.secret},
    )
    assert response.status_code == 200
    assert response.content == INACTIVE


async def test_private_key_jwt_authenticates_once_per_assertion(world: World) -> None:
    server = await add_server(world, "https://jwt.example.test", method="private_key_jwt")
    assert server.key is not None
    form = client_assertion(server.key, server.id, world.clock.now())
    first = await world.client.post(INTROSPECT, data={"token": "x.y.z", **form})
    assert first.status_code == 200, first.text
    # RFC 7523 §3 item 7: the same jti again is a replay.
    replayed = await world.client.post(INTROSPECT, data={"token": "x.y.z", **form})
    _assert_invalid_client(replayed, via_header=False)
    # The endpoint's own URL is an accepted audience too.
    own_url = client_assertion(server.key, server.id, world.clock.now(), aud=ISSUER + INTROSPECT)
    assert (await world.client.post(INTROSPECT, data={"token": "t", **own_url})).status_code == 200


@pytest.mark.parametrize(
    "override",
    [
        {"aud": "https://elsewhere.example"},
        {"aud": ISSUER + "/oauth2/token"},
        {"sub": "someone-else"},
        {"exp": 1},
    ],
)
async def test_bad_client_assertion_is_invalid_client(
    world: World, override: dict[str, Any]
) -> None:
    server = await add_server(world, "https://jwt.example.test", method="private_key_jwt")
    assert server.key is not None
    claims = dict(override)
    aud = claims.pop("aud", ISSUER)
    form = client_assertion(server.key, server.id, world.clock.now(), aud=aud, **claims)
    response = await world.client.post(INTROSPECT, data={"token": "x.y.z", **form})
    _assert_invalid_client(response, via_header=False)


async def test_assertion_signed_by_another_key_is_invalid_client(world: World) -> None:
    server = await add_server(world, "https://jwt.example.test", method="private_key_jwt")
    assert server.key is not None
    thief = AgentKey(kid=server.key.kid)
    form = client_assertion(thief, server.id, world.clock.now())
    response = await world.client.post(INTROSPECT, data={"token": "x.y.z", **form})
    _assert_invalid_client(response, via_header=False)


# --- client authentication ---------------------------------------------------------------------
async def _introspect_raw(
    world: World, headers: dict[str, str], data: dict[str, str]
) -> httpx.Response:
    return await world.client.post(INTROSPECT, data=data, headers=headers)


def _assert_invalid_client(response: httpx.Response, *, via_header: bool = True) -> None:
    """RFC 6749 §5.2: 401 + Basic challenge after the Authorization header, else 400."""
    assert response.status_code == (401 if via_header else 400), response.text
    assert response.json()["error"] == "invalid_client"
    if via_header:
        assert response.headers["www-authenticate"].startswith("Basic realm=")
    else:
        assert "www-authenticate" not in response.headers
    assert response.headers["cache-control"] == "no-store"


async def test_no_credentials_is_invalid_client(world: World) -> None:
    token = await issue(world)
    _assert_invalid_client(await _introspect_raw(world, {}, {"token": token}), via_header=False)


async def test_wrong_secret_is_invalid_client(world: World) -> None:
    token = await issue(world)
    headers = basic(world.server_id, world.server_secret + "x")
    _assert_invalid_client(await _introspect_raw(world, headers, {"token": token}))


async def test_unknown_client_is_invalid_client(world: World) -> None:
    token = await issue(world)
    headers = basic("rs_" + uuid.uuid4().hex, world.server_secret)
    _assert_invalid_client(await _introspect_raw(world, headers, {"token": token}))


async def test_agent_cannot_introspect(world: World) -> None:
    token = await issue(world)
    form = client_assertion(world.agent_key, world.agent_id, world.clock.now())
    _assert_invalid_client(
        await _introspect_raw(world, {}, {"token": token, **form}), via_header=False
    )


async def test_secret_of_a_basic_client_works_in_the_body_too(world: World) -> None:
    token = await issue(world)
    data = {"token": token, "client_id": world.server_id, "client_secret": world.server_secret}
    response = await _introspect_raw(world, {}, data)
    assert response.json()["active"] is True


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer abc",
        "Basic",
    ],
)
async def test_malformed_basic_credentials_are_invalid_client(world: World, header: str) -> None:
    _assert_invalid_client(await _introspect_raw(world, {"Authorization": header}, {"token": "t"}))


async def test_basic_credentials_are_form_urlencoded(world: World) -> None:
    """RFC 6749 §2.3.1: the user-id and password are form-urlencoded before base64."""
    token = await issue(world)
    encoded = "".join(f"%{ord(c):02X}" for c in world.server_secret)
    pair = f"{world.server_id}:{encoded}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    response = await _introspect_raw(world, headers, {"token": token})
    assert response.json()["active"] is True


async def test_two_authentication_methods_are_refused(world: World) -> None:
    data = {"token": "t", "client_id": world.server_id, "client_secret": world.server_secret}
    response = await _introspect_raw(world, basic(world.server_id, world.server_secret), data)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_retired_resource_server_cannot_introspect(world: World) -> None:
    server = await add_server(world, "https://old.example.test")
    assert server.secret is not None
    response = await world.client.delete(
        f"/v1/resource-servers/{server.id}", headers=world.auth(world.admin)
    )
    assert response.status_code == 200
    headers = basic(server.id, server.secret)
    _assert_invalid_client(await _introspect_raw(world, headers, {"token": "t"}))


async def test_missing_token_is_invalid_request_after_authentication(world: World) -> None:
    headers = basic(world.server_id, world.server_secret)
    response = await _introspect_raw(world, headers, {"token_type_hint": "access_token"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_token_in_query_string_is_refused(world: World) -> None:
    token = await issue(world)
    response = await world.client.post(
        INTROSPECT + "?token=" + token,
        data={"token": token},
        headers=basic(world.server_id, world.server_secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_get_is_not_allowed(world: World) -> None:
    response = await world.client.get(INTROSPECT, headers=basic(world.server_id, "x"))
    assert response.status_code == 405


# --- the many identical "no"s ---------------------------------------------------------------------
async def _forged(world: World, token: str, **changes: Any) -> str:
    """The token's claims, changed, and signed by the authority's own key (no grant row)."""
    claims = {**unverified(token), **changes}
    return world.services.keyring.sign(claims, typ="at+jwt")


async def _other_key(world: World, token: str) -> str:
    key = AgentKey()
    header = jwt.get_unverified_header(token)
    return key.sign(unverified(token), {"kid": header["kid"], "typ": "at+jwt"})


async def _case(world: World, name: str) -> tuple[str, Server | None]:
    """Set the world up for one inactive case; return the token and who introspects."""
    token = await issue(world)
    claims = unverified(token)
    if name == "other_resource_server":
        return token, await add_server(world, "https://other.example.test")
    if name == "garbage":
        return "not-a-token", None
    if name == "empty_segments":
        return "..", None
    if name == "alg_none":
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        return f"{header.decode()}.{body.decode()}.", None
    if name == "same_claims_other_signature":
        # Introspection checks no signature: it finds the digest of these exact bytes
        # among issued grants. A valid header and payload with any other signature fail.
        head, payload, signature = token.split(".")
        other = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
        return f"{head}.{payload}.{other}", None
    if name == "signed_by_another_key":
        return await _other_key(world, token), None
    if name == "delegation_credential":
        return world.credential, None
    if name == "no_grant_row":
        return await _forged(world, token, jti="at_" + uuid.uuid4().hex), None
    if name == "altered_but_re_signed":
        # Same jti as a live grant, other content: the grant's hash does not match.
        return await _forged(world, token, intent="something else"), None
    if name == "other_audience_claim":
        return await _forged(world, token, aud="https://other.example.test"), None
    if name == "expired":
        world.clock.advance(claims["exp"] - claims["iat"])
        return token, None
    if name == "revoked_token":
        assert (await revoke_as_server(world, token)).status_code == 200
        return token, None
    if name == "revoked_delegation":
        await world.post(f"/v1/delegations/{world.delegation_id}/revoke", world.owner_key, {})
        return token, None
    if name == "quarantined_agent":
        reason = {"reason": "acting oddly"}
        await world.post(f"/v1/agents/{world.agent_id}/quarantine", world.owner_key, reason)
        return token, None
    if name == "killed_owner":
        await world.post(f"/v1/owners/{world.owner_id}/kill", world.owner_key, {"reason": "stop"})
        return token, None
    if name == "suspended_owner":
        async with world.services.engine.begin() as conn:
            await conn.execute(
                update(owners).where(owners.c.id == world.owner_id).values(status="suspended")
            )
        return token, None
    if name == "expired_delegation":
        async with world.services.engine.begin() as conn:
            await conn.execute(
                update(delegations)
                .where(delegations.c.id == world.delegation_id)
                .values(expires_at=world.services.now())
            )
        return token, None
    raise AssertionError(name)


INACTIVE_CASES = [
    "other_resource_server",
    "garbage",
    "empty_segments",
    "alg_none",
    "same_claims_other_signature",
    "signed_by_another_key",
    "delegation_credential",
    "no_grant_row",
    "altered_but_re_signed",
    "other_audience_claim",
    "expired",
    "revoked_token",
    "revoked_delegation",
    "quarantined_agent",
    "killed_owner",
    "suspended_owner",
    "expired_delegation",
]


@pytest.mark.parametrize("case", INACTIVE_CASES)
async def test_inactive_answers_are_byte_identical(world: World, case: str) -> None:
    token, server = await _case(world, case)
    response = await introspect(world, token, server)
    assert response.status_code == 200, response.text
    assert response.content == INACTIVE
    headers = dict(response.headers)
    # The request's own id (endpoints.request_log), the same whatever the token.
    assert len(headers.pop("x-request-id")) == 32
    assert headers == {
        "content-length": str(len(INACTIVE)),
        "content-type": "application/json",
        "cache-control": "no-store",
        "pragma": "no-cache",
    }


async def test_an_inactive_token_of_the_caller_is_indistinguishable_from_garbage(
    world: World,
) -> None:
    token = await issue(world)
    other = await add_server(world, "https://other.example.test")
    answers = {
        (await introspect(world, token, other)).content,
        (await introspect(world, "garbage")).content,
    }
    world.clock.advance(10)
    answers.add((await introspect(world, token)).content)
    assert answers == {INACTIVE}


# --- single use --------------------------------------------------------------------------------
async def _single_use_token(world: World) -> str:
    await world.add_tool("vault.secrets.read", actions=["read"], read=["read"], single_use=True)
    await world.delegate(
        scope=[{"tool": "vault.secrets.read", "resources": ["prod/*"], "actions": ["read"]}]
    )
    return await issue(world, tool="vault.secrets.read", resource="prod/db", action="read")


async def test_single_use_token_is_consumed_by_the_first_active_answer(world: World) -> None:
    token = await _single_use_token(world)
    assert await is_active(world, token) is True
    assert (await introspect(world, token)).content == INACTIVE
    async with world.services.engine.connect() as conn:
        row = (
            await conn.execute(select(grants).where(grants.c.jti == unverified(token)["jti"]))
        ).one()
    assert row.consumed_at is not None


async def test_single_use_token_has_one_winner_among_concurrent_introspections(
    world: World,
) -> None:
    token = await _single_use_token(world)
    answers = await asyncio.gather(*(introspect(world, token) for _ in range(12)))
    assert [a.status_code for a in answers] == [200] * 12
    assert sum(a.json()["active"] for a in answers) == 1


async def test_inactive_introspection_does_not_consume(world: World) -> None:
    token = await _single_use_token(world)
    other = await add_server(world, "https://other.example.test")
    assert (await introspect(world, token, other)).content == INACTIVE
    assert await is_active(world, token) is True


async def test_reusable_token_stays_active(world: World) -> None:
    token = await issue(world)
    assert [await is_active(world, token) for _ in range(3)] == [True, True, True]


async def test_a_secret_authenticates_only_a_client_registered_for_one(world: World) -> None:
    """A client registered for private_key_jwt is never authenticated by a secret, even a
    right one (say, left behind by an earlier registration)."""
    token = await issue(world)
    async with world.services.engine.begin() as conn:
        await conn.execute(
            update(resource_servers)
            .where(resource_servers.c.id == world.server_id)
            .values(auth_method="private_key_jwt")
        )
    _assert_invalid_client(
        await _introspect_raw(world, basic(world.server_id, world.server_secret), {"token": token})
    )


async def test_a_token_whose_key_is_no_longer_published_is_inactive(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest proves the bytes ours; the header must still name a published token
    key with its algorithm and ``typ``, so withdrawing a key stops its tokens at once."""
    token = await issue(world)
    assert (await introspect(world, token)).json()["active"] is True
    withdrawn = jwt.get_unverified_header(token)["kid"]
    keyring = world.services.keyring
    published = keyring.public_key

    def without_withdrawn(kid: str, purpose: Any = "token") -> Any:
        return None if kid == withdrawn else published(kid, purpose)

    monkeypatch.setattr(keyring, "public_key", without_withdrawn)
    response = await introspect(world, token)
    assert response.content == INACTIVE


# --- the registry: a token outlives no retirement of its tool or resource server ---------------
async def _tool_id(world: World, name: str = "github.issues.create") -> str:
    async with world.services.engine.connect() as conn:
        tool_id: str = (
            await conn.execute(select(tools.c.id).where(tools.c.name == name))
        ).scalar_one()
    return tool_id


async def test_a_token_of_a_tool_retired_after_issue_is_inactive(world: World) -> None:
    token = await issue(world)
    assert await is_active(world, token) is True
    retired = await world.client.delete(
        f"/v1/tools/{await _tool_id(world)}", headers=world.auth(world.admin)
    )
    assert retired.status_code == 200, retired.text
    assert (await introspect(world, token)).content == INACTIVE


async def test_a_single_use_token_of_a_retired_tool_is_inactive_and_not_consumed(
    world: World,
) -> None:
    token = await _single_use_token(world)
    tool_id = await _tool_id(world, "vault.secrets.read")
    async with world.services.engine.begin() as conn:
        await conn.execute(update(tools).where(tools.c.id == tool_id).values(status="retired"))
    assert (await introspect(world, token)).content == INACTIVE
    async with world.services.engine.connect() as conn:
        consumed = (
            await conn.execute(
                select(grants.c.consumed_at).where(grants.c.jti == unverified(token)["jti"])
            )
        ).scalar_one()
    assert consumed is None


async def test_a_token_of_a_tool_now_hosted_elsewhere_is_inactive(world: World) -> None:
    """The tool's host, as registered now, must be the caller."""
    token = await issue(world)
    elsewhere = await add_server(world, "https://elsewhere.example.test")
    tool_id = await _tool_id(world)
    async with world.services.engine.begin() as conn:
        await conn.execute(
            update(tools).where(tools.c.id == tool_id).values(resource_server_id=elsewhere.id)
        )
    assert (await introspect(world, token)).content == INACTIVE
    assert (await introspect(world, token, elsewhere)).content == INACTIVE


@pytest.mark.parametrize("how", ["api", "status_only"])
async def test_a_resource_server_deactivated_after_issue_never_hears_active(
    world: World, how: str
) -> None:
    """Retired through the API (its tools first, then the server: its secret is forgotten)
    or with only its status changed (secret intact): its tokens are never active again.
    The server is no longer a client, so RFC 6749 §5.2 answers 401 ``invalid_client``."""
    token = await issue(world)
    assert await is_active(world, token) is True
    if how == "api":
        admin = world.auth(world.admin)
        tool = await world.client.delete(f"/v1/tools/{await _tool_id(world)}", headers=admin)
        assert tool.status_code == 200, tool.text
        server = await world.client.delete(f"/v1/resource-servers/{world.server_id}", headers=admin)
        assert server.status_code == 200, server.text
    else:
        async with world.services.engine.begin() as conn:
            await conn.execute(
                update(resource_servers)
                .where(resource_servers.c.id == world.server_id)
                .values(status="retired")
            )
    _assert_invalid_client(await introspect(world, token))


async def test_concurrent_introspections_each_answer_for_their_own_token(world: World) -> None:
    """Coalesced lookups (storage.sql.introspection): one query for many, each its answer."""
    tokens = [await issue(world) for _ in range(3)]
    assert (await revoke_as_server(world, tokens[1])).status_code == 200
    asked = [tokens[i % 3] for i in range(30)] + ["not-a-token"]
    answers = await asyncio.gather(*(introspect(world, t) for t in asked))
    for token, answer in zip(asked, answers, strict=True):
        assert answer.status_code == 200, answer.text
        expected = token in (tokens[0], tokens[2])
        assert answer.json()["active"] is expected
        if expected:
            assert (
                answer.json()["jti"]
                == jwt.decode(token, options={"verify_signature": False})["jti"]
            )
