"""Token exchange (RFC 8693) as an outside client sees it: issued tokens and every refusal."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update

from authority.storage.schema import agents, delegations, grants, ledger_entries
from tests.support import ISSUER, RS_AUDIENCE, AgentKey, World, tool_call


async def verify_with_discovery(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """What a resource server does: discovery -> jwks_uri -> PyJWT, nothing else."""
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    jwks = (await client.get(metadata["jwks_uri"].removeprefix(ISSUER))).json()
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=[header["alg"]],
        audience=RS_AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "jti", "sub", "aud", "iss"]},
    )
    assert header["typ"] == "at+jwt"
    return claims


async def grant_rows(world: World) -> list[Any]:
    async with world.services.engine.connect() as conn:
        return list((await conn.execute(select(grants).order_by(grants.c.created_at))).all())


async def last_grant(world: World) -> Any:
    rows = await grant_rows(world)
    assert rows, "no grant row was written"
    return rows[-1]


# --- issuance --------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["actor_token", "client_assertion"])
async def test_exchange_issues_a_verifiable_per_call_token(world: World, via: str) -> None:
    response = await world.exchange(via=via)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 5
    assert "refresh_token" not in body
    claims = await verify_with_discovery(world.client, body["access_token"])
    assert claims["sub"] == world.owner_id
    assert claims["client_id"] == world.agent_id
    assert claims["act"] == {"sub": world.agent_id}
    assert claims["aud"] == RS_AUDIENCE
    assert claims["delegation_id"] == world.delegation_id
    assert claims["intent"] == "triage bugs in acme/web"
    assert claims["exp"] - claims["iat"] == 5
    assert claims["authorization_details"] == [
        {
            "type": "tool_call",
            "tool": "github.issues.create",
            "resource": "acme/web",
            "action": "create",
            "locations": [RS_AUDIENCE],
        }
    ]
    assert body["authorization_details"] == claims["authorization_details"]


async def test_issued_grant_records_hash_never_the_token(world: World) -> None:
    response = await world.exchange()
    token = response.json()["access_token"]
    grant = await last_grant(world)
    assert grant.decision == "issued"
    assert grant.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert grant.jti == jwt.decode(token, options={"verify_signature": False})["jti"]
    async with world.services.engine.connect() as conn:
        bodies = [r.body for r in (await conn.execute(select(ledger_entries))).all()]
    assert any(json.loads(b).get("grant_id") == grant.id for b in bodies)
    assert not any(token in b for b in bodies)
    assert not any(token in str(tuple(r)) for r in await grant_rows(world))


async def test_dpop_binds_the_token_to_the_proof_key(world: World) -> None:
    holder = AgentKey()
    proof = holder.dpop_proof(world.clock.now())
    response = await world.exchange(headers={"DPoP": proof})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    claims = await verify_with_discovery(world.client, body["access_token"])
    expected = jwt.PyJWK(holder.public_jwk()).key
    assert claims["cnf"]["jkt"] == _thumbprint(holder.public_jwk())
    assert expected is not None


def _thumbprint(jwk: dict[str, Any]) -> str:
    members = {k: jwk[k] for k in ("crv", "kty", "x")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


async def test_requested_lifetime_within_the_cap_is_honoured(world: World) -> None:
    response = await world.exchange(expires_in="30")
    assert response.status_code == 200
    assert response.json()["expires_in"] == 30


# --- RFC 8725 pitfalls on the attestation -----------------------------------------------------
def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(world: World, **overrides: Any) -> dict[str, Any]:
    now = int(world.clock.now())
    claims = {
        "iss": world.agent_id,
        "sub": world.agent_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 30,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def alg_none(world: World) -> str:
    header = {"alg": "none", "kid": world.agent_key.kid}
    return f"{_b64(header)}.{_b64(_claims(world))}."


def hmac_with_public_key(world: World) -> str:
    public = world.agent_key.private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    import hmac as _hmac

    header = {"alg": "HS256", "kid": world.agent_key.kid, "typ": "JWT"}
    signing_input = f"{_b64(header)}.{_b64(_claims(world))}"
    mac = _hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def wrong_alg(world: World) -> str:
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(
        _claims(world), other, algorithm="ES256", headers={"kid": world.agent_key.kid}
    )


def unknown_kid(world: World) -> str:
    return world.agent_key.sign(_claims(world), {"kid": "nobody"})


def embedded_jwk(world: World) -> str:
    attacker = AgentKey(kid=world.agent_key.kid)
    header = {"kid": world.agent_key.kid, "jwk": attacker.public_jwk()}
    return attacker.sign(_claims(world), header)


def jku_and_x5u(world: World) -> str:
    attacker = AgentKey(kid=world.agent_key.kid)
    header = {
        "kid": world.agent_key.kid,
        "jku": "https://attacker.example/jwks",
        "x5u": "https://attacker.example/cert",
    }
    return attacker.sign(_claims(world), header)


def expired(world: World) -> str:
    now = int(world.clock.now())
    return world.agent_key.sign(
        _claims(world, iat=now - 60, exp=now - 30), {"kid": world.agent_key.kid}
    )


def future_iat(world: World) -> str:
    now = int(world.clock.now())
    return world.agent_key.sign(
        _claims(world, iat=now + 600, exp=now + 630), {"kid": world.agent_key.kid}
    )


def stale(world: World) -> str:
    """exp far out, but issued longer ago than assertion_max_lifetime (+ skew)."""
    now = int(world.clock.now())
    return world.agent_key.sign(
        _claims(world, iat=now - 120, exp=now + 3600), {"kid": world.agent_key.kid}
    )


def wrong_aud(world: World) -> str:
    return world.agent_key.sign(
        _claims(world, aud="https://elsewhere.example"), {"kid": world.agent_key.kid}
    )


def iss_sub_mismatch(world: World) -> str:
    return world.agent_key.sign(
        _claims(world, sub="agt_someone_else"), {"kid": world.agent_key.kid}
    )


def no_jti(world: World) -> str:
    claims = _claims(world)
    del claims["jti"]
    return world.agent_key.sign(claims, {"kid": world.agent_key.kid})


def typ_confusion(world: World) -> str:
    return world.agent_key.sign(_claims(world), {"kid": world.agent_key.kid, "typ": "at+jwt"})


def nul_in_iss(world: World) -> str:
    # PostgreSQL refuses NUL in text: such an id must never reach SQL (a 500 otherwise).
    bad = world.agent_id + "\u0000"
    return world.agent_key.sign(_claims(world, iss=bad, sub=bad), {"kid": world.agent_key.kid})


def not_a_jwt(world: World) -> str:
    return "this.is.not-a-jwt"


BAD_ATTESTATIONS = [
    alg_none,
    hmac_with_public_key,
    wrong_alg,
    unknown_kid,
    embedded_jwk,
    jku_and_x5u,
    expired,
    future_iat,
    stale,
    wrong_aud,
    iss_sub_mismatch,
    no_jti,
    typ_confusion,
    nul_in_iss,
    not_a_jwt,
]


@pytest.mark.parametrize("make", BAD_ATTESTATIONS, ids=lambda f: f.__name__)
async def test_bad_attestation_is_refused_and_recorded(world: World, make: Any) -> None:
    response = await world.exchange(attestation=make(world))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    grant = await last_grant(world)
    assert grant.decision == "denied"
    assert grant.reason in ("attestation_invalid", "agent_unknown")
    # An unauthenticated request is never attributed to the agent it names.
    assert grant.agent_id is None


@pytest.mark.parametrize("make", [unknown_kid, expired, alg_none], ids=lambda f: f.__name__)
async def test_bad_client_assertion_is_invalid_client(world: World, make: Any) -> None:
    response = await world.exchange(attestation=make(world), via="client_assertion")
    # RFC 6749 §5.2: 400 for an assertion in the body; the 401 and its challenge are for
    # a client that used the Authorization header.
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers


async def test_replayed_attestation_gets_exactly_one_token(world: World) -> None:
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    responses = await asyncio.gather(*(world.exchange(attestation=attestation) for _ in range(50)))
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 1, codes
    assert codes.count(400) == 49
    refused = [r.json()["error"] for r in responses if r.status_code != 200]
    assert set(refused) == {"invalid_request"}
    reasons = [g.reason for g in await grant_rows(world) if g.decision == "denied"]
    assert reasons.count("attestation_replayed") == 49


# --- the delegation ---------------------------------------------------------------------------
async def test_delegation_of_another_agent_is_refused(world: World) -> None:
    other_key = AgentKey()
    other = await world.post(
        "/v1/agents",
        world.owner_key,
        {"name": "other", "autonomy_level": 2, "jwks": other_key.jwks()},
    )
    attestation = other_key.attestation(other["id"], world.clock.now())
    response = await world.exchange(attestation=attestation)
    assert response.status_code == 400
    grant = await last_grant(world)
    assert grant.reason == "delegation_wrong_agent"
    assert grant.agent_id == other["id"]


async def test_access_token_is_not_a_delegation(world: World) -> None:
    token = (await world.exchange()).json()["access_token"]
    form = world.exchange_form()
    form["subject_token"] = token
    response = await world.client.post("/oauth2/token", data=form)
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "delegation_invalid"


async def test_forged_delegation_is_refused(world: World) -> None:
    header, payload, _ = world.credential.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["exp"] += 10**6
    forged = f"{header}.{_b64(claims)}.{world.credential.split('.')[2]}"
    form = world.exchange_form()
    form["subject_token"] = forged
    response = await world.client.post("/oauth2/token", data=form)
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "delegation_invalid"


async def test_revoked_delegation_is_refused(world: World) -> None:
    revoked = await world.client.post(
        f"/v1/delegations/{world.delegation_id}/revoke", headers=world.auth(world.owner_key)
    )
    assert revoked.status_code == 200, revoked.text
    response = await world.exchange()
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "delegation_revoked"


async def test_expired_delegation_is_refused(world: World) -> None:
    world.clock.advance(3601)
    response = await world.exchange()
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "delegation_expired"


async def test_quarantined_agent_is_refused(world: World) -> None:
    async with world.services.engine.begin() as conn:
        await conn.execute(
            update(agents).where(agents.c.id == world.agent_id).values(status="quarantined")
        )
    response = await world.exchange()
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "agent_inactive"
    response = await world.exchange(via="client_assertion")
    assert response.json()["error"] == "unauthorized_client"


# --- the call ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "reason"),
    [
        ({"tool": "github.repos.delete"}, "invalid_target", "tool_unknown"),
        ({"resource": "other-org/web"}, "invalid_scope", "resource_not_delegated"),
        ({"resource": "acme/web/deep"}, "invalid_scope", "resource_not_delegated"),
        ({"action": "read"}, "invalid_scope", "action_not_delegated"),
        ({"action": "destroy"}, "invalid_scope", "action_unknown"),
        ({"audience": "https://evil.example"}, "invalid_target", "audience_mismatch"),
        ({"expires_in": "61"}, "invalid_request", "lifetime_too_long"),
    ],
)
async def test_call_outside_the_delegation_is_refused(
    world: World, kwargs: dict[str, Any], error: str, reason: str
) -> None:
    response = await world.exchange(**kwargs)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    grant = await last_grant(world)
    assert (grant.decision, grant.reason) == ("denied", reason)
    assert grant.agent_id == world.agent_id


async def test_tool_not_in_delegation_is_refused(world: World) -> None:
    await world.add_tool("github.issues.comment", actions=["create"])
    response = await world.exchange(tool="github.issues.comment")
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "tool_not_delegated"


async def test_retired_tool_is_refused(world: World) -> None:
    tool = await world.add_tool("github.issues.close", actions=["create"])
    await world.delegate(
        scope=[{"tool": "github.issues.close", "resources": ["acme/*"], "actions": ["create"]}]
    )
    retired = await world.client.delete(f"/v1/tools/{tool['id']}", headers=world.auth(world.admin))
    assert retired.status_code == 200
    response = await world.exchange(tool="github.issues.close")
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "tool_inactive"


async def test_tool_requiring_dpop_refuses_bearer(world: World) -> None:
    await world.add_tool("vault.read", actions=["read"], read=["read"], dpop_required=True)
    await world.delegate(scope=[{"tool": "vault.read", "resources": ["**"], "actions": ["read"]}])
    response = await world.exchange(tool="vault.read", action="read")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"
    proof = AgentKey().dpop_proof(world.clock.now())
    response = await world.exchange(tool="vault.read", action="read", headers={"DPoP": proof})
    assert response.status_code == 200


async def test_risk_above_autonomy_is_sent_for_approval_not_granted(world: World) -> None:
    await world.add_tool("prod.deploy", actions=["run"], risk=3)
    await world.delegate(scope=[{"tool": "prod.deploy", "resources": ["*"], "actions": ["run"]}])
    response = await world.exchange(tool="prod.deploy", resource="web", action="run")
    # CIBA §7.3: accepted and pending, no token (tests/unit/approvals covers the cycle).
    assert response.status_code == 200
    assert "access_token" not in response.json()
    assert set(response.json()) == {"auth_req_id", "expires_in", "interval"}
    grant = await last_grant(world)
    assert (grant.decision, grant.reason, grant.jti) == ("pending", "autonomy_too_low", None)


async def test_call_cap_is_enforced(world: World) -> None:
    await world.delegate(max_calls=2)
    assert (await world.exchange()).status_code == 200
    assert (await world.exchange()).status_code == 200
    response = await world.exchange()
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert (await last_grant(world)).reason == "call_cap_exhausted"


async def test_call_cap_holds_under_concurrency(world: World) -> None:
    await world.delegate(max_calls=5)
    responses = await asyncio.gather(*(world.exchange() for _ in range(20)))
    assert [r.status_code for r in responses].count(200) == 5
    # Each spent call has exactly one issued grant and one issued ledger entry, and each
    # refused one a denial with its reason: nothing is written for a call not spent.
    async with world.services.engine.connect() as conn:
        spent = (
            await conn.execute(
                select(delegations.c.calls_used).where(delegations.c.id == world.delegation_id)
            )
        ).scalar_one()
        decided = (
            await conn.execute(
                select(grants.c.decision, grants.c.reason).where(
                    grants.c.delegation_id == world.delegation_id
                )
            )
        ).all()
        entries = (
            (
                await conn.execute(
                    select(ledger_entries.c.decision).where(
                        ledger_entries.c.kind == "grant",
                        ledger_entries.c.delegation_id == world.delegation_id,
                    )
                )
            )
            .scalars()
            .all()
        )
    assert spent == 5
    assert sorted(d.decision for d in decided) == ["denied"] * 15 + ["issued"] * 5
    assert {d.reason for d in decided if d.decision == "denied"} == {"call_cap_exhausted"}
    assert sorted(entries) == ["denied"] * 15 + ["issued"] * 5


async def test_rate_limit_per_minute(world: World) -> None:
    await world.delegate(rate_per_minute=3)
    answers = [await world.exchange() for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert (await last_grant(world)).reason == "rate_limited"
    # Asking again is worth it once the minute's window has turned, not before.
    now = int(world.clock.now())
    assert answers[-1].headers["retry-after"] == str(60 - now % 60)
    world.clock.advance(60)
    assert (await world.exchange()).status_code == 200


async def test_bad_dpop_proof_is_refused(world: World) -> None:
    holder = AgentKey()
    proof = holder.dpop_proof(world.clock.now(), url="https://other.example/token")
    response = await world.exchange(headers={"DPoP": proof})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"
    assert (await last_grant(world)).reason == "dpop_invalid"


async def test_replayed_dpop_proof_is_refused(world: World) -> None:
    proof = AgentKey().dpop_proof(world.clock.now())
    assert (await world.exchange(headers={"DPoP": proof})).status_code == 200
    response = await world.exchange(headers={"DPoP": proof})
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "dpop_replayed"


async def test_dpop_proof_with_private_key_is_refused(world: World) -> None:
    holder = Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(holder))
    claims = {
        "jti": "x",
        "htm": "POST",
        "htu": ISSUER + "/oauth2/token",
        "iat": int(world.clock.now()),
    }
    proof = jwt.encode(claims, holder, algorithm="EdDSA", headers={"typ": "dpop+jwt", "jwk": jwk})
    response = await world.exchange(headers={"DPoP": proof})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"


# --- malformed requests: no decision, no grant row, never a 5xx --------------------------------
MALFORMED: list[tuple[str, dict[str, Any], int, str]] = [
    ("no grant_type", {"grant_type": None}, 400, "invalid_request"),
    ("other grant", {"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
    ("no subject", {"subject_token": None}, 400, "invalid_request"),
    ("bad subject type", {"subject_token_type": "urn:x"}, 400, "invalid_request"),
    ("no resource", {"resource": None}, 400, "invalid_target"),
    ("relative resource", {"resource": "/tools"}, 400, "invalid_target"),
    ("resource fragment", {"resource": RS_AUDIENCE + "#x"}, 400, "invalid_target"),
    ("no details", {"authorization_details": None}, 400, "invalid_request"),
    ("details not json", {"authorization_details": "{"}, 400, "invalid_authorization_details"),
    ("details object", {"authorization_details": "{}"}, 400, "invalid_authorization_details"),
    (
        "two details",
        {"authorization_details": json.dumps([{}, {}])},
        400,
        "invalid_authorization_details",
    ),
    (
        "other type",
        {"authorization_details": json.dumps([{"type": "payment"}])},
        400,
        "invalid_authorization_details",
    ),
    (
        "unknown field",
        {
            "authorization_details": json.dumps(
                [{"type": "tool_call", "tool": "t", "resource": "r", "action": "a", "x": 1}]
            )
        },
        400,
        "invalid_authorization_details",
    ),
    (
        "wrong field type",
        {
            "authorization_details": json.dumps(
                [{"type": "tool_call", "tool": 1, "resource": "r", "action": "a"}]
            )
        },
        400,
        "invalid_authorization_details",
    ),
    ("scope", {"scope": "admin"}, 400, "invalid_scope"),
    ("no attestation", {"actor_token": None}, 400, "invalid_client"),
    ("bad actor type", {"actor_token_type": "urn:x"}, 400, "invalid_request"),
    (
        "wrong requested type",
        {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
        400,
        "invalid_request",
    ),
    ("bad lifetime", {"expires_in": "-5"}, 400, "invalid_request"),
]


@pytest.mark.parametrize(
    ("name", "changes", "status", "error"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
async def test_malformed_requests_leave_no_grant(
    world: World, name: str, changes: dict[str, Any], status: int, error: str
) -> None:
    form: dict[str, Any] = world.exchange_form()
    for key, value in changes.items():
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    before = await grant_rows(world)
    response = await world.client.post("/oauth2/token", data=form)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    assert await grant_rows(world) == before


async def test_duplicate_parameters_are_refused(world: World) -> None:
    form = world.exchange_form()
    body = httpx.QueryParams(form).add("subject_token", form["subject_token"])
    response = await world.client.post(
        "/oauth2/token",
        content=str(body),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_two_resources_are_refused(world: World) -> None:
    form = world.exchange_form()
    body = httpx.QueryParams(form).add("resource", "https://other.example")
    response = await world.client.post(
        "/oauth2/token",
        content=str(body),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"grant_type&&subject_token", "application/x-www-form-urlencoded", 400),
        (b"\xff\xfe", "application/x-www-form-urlencoded", 400),
        (b'{"grant_type": "x"}', "application/json", 415),
        (b"a=" + b"x" * 70_000, "application/x-www-form-urlencoded", 413),
        (b"&".join(b"p%d=1" % i for i in range(100)), "application/x-www-form-urlencoded", 400),
    ],
)
async def test_malformed_bodies(
    world: World, content: bytes, content_type: str, status: int
) -> None:
    response = await world.client.post(
        "/oauth2/token", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.json()["error"] == "invalid_request"


async def test_parameters_in_the_query_string_are_refused(world: World) -> None:
    response = await world.client.post(
        "/oauth2/token?" + str(httpx.QueryParams(world.exchange_form())), data={"grant_type": "x"}
    )
    assert response.status_code == 400


async def test_error_descriptions_never_echo_input(world: World) -> None:
    marker = "ECHO-" + uuid.uuid4().hex
    for changes in (
        {"grant_type": marker},
        {"authorization_details": tool_call(marker, marker, marker)},
        {"resource": "https://" + marker},
        {"subject_token": marker},
    ):
        form = {**world.exchange_form(), **changes}
        response = await world.client.post("/oauth2/token", data=form)
        assert marker not in response.text


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e300])
async def test_non_finite_times_are_refused_not_500(world: World, value: float) -> None:
    """JSON allows 1e999 (infinity); a JWT time that is not a finite number is bad input."""
    attestation = world.agent_key.sign(_claims(world, exp=value), {"kid": world.agent_key.kid})
    response = await world.exchange(attestation=attestation)
    assert response.status_code == 400
    assert (await last_grant(world)).reason == "attestation_invalid"
    proof = AgentKey().dpop_proof(world.clock.now(), iat=value)
    response = await world.exchange(headers={"DPoP": proof})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"


async def test_an_attestation_is_spent_even_when_its_request_is_denied(world: World) -> None:
    """RFC 7523 §3: single use, so one captured from a refused call cannot be replayed."""
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    refused = await world.exchange(attestation=attestation, resource="other-org/web")
    assert refused.status_code == 400
    replayed = await world.exchange(attestation=attestation)
    assert replayed.status_code == 400
    assert (await last_grant(world)).reason == "attestation_replayed"
