"""The SDK's agents proving themselves by platform: a platform token alone, or with the
agent's own key where its owner requires both; a fresh platform token on every request."""

from __future__ import annotations

import jwt
import pytest
from joserfc.jwk import OKPKey

from authority.federation.model import Preset
from authority.sdk.agent import AgentClient
from authority.sdk.errors import AuthorityClientError
from tests.federation_issuers import TestIssuer, serving_issuers
from tests.integration.federation.workload_support import add_domain, now_of, workload_agent
from tests.support import ISSUER, RS_AUDIENCE, AgentKey, World

TOOL = ("github.issues.create", "acme/web", "create")


def _private(key: AgentKey) -> OKPKey:
    d = jwt.algorithms.OKPAlgorithm.to_jwk(key.private, as_dict=True)["d"]
    return OKPKey.import_key({**key.public_jwk(), "d": d})


async def test_a_workload_agent_gets_a_token_per_call_with_a_fresh_platform_token(
    world: World,
) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    async with serving_issuers(github):
        domain_id = await add_domain(world, github)
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        agent_id, credential = await workload_agent(world, [rule])
        asked: list[str] = []

        def platform_token() -> str:
            asked.append(github.github_token("acme/web", now=now_of(world)))
            return asked[-1]

        client = AgentClient(
            ISSUER,
            agent_id,
            None,
            credential,
            http=world.client,
            clock=world.clock.now,
            platform_token=platform_token,
        )
        first = await client.token(*TOOL, audience=RS_AUDIENCE)
        second = await client.token(*TOOL, audience=RS_AUDIENCE)
        assert first.value != second.value
        assert len(asked) == 2 and asked[0] != asked[1]  # each request spends its own
        claims = jwt.decode(first.value, options={"verify_signature": False})
        assert claims["act"]["workload"]["claims"]["repository"] == "acme/web"


async def test_an_agent_required_to_prove_both_sends_both(world: World) -> None:
    github = TestIssuer("github", Preset.GITHUB)
    key = AgentKey()
    async with serving_issuers(github):
        domain_id = await add_domain(world, github)
        rule = {"domain_id": domain_id, "claims": {"repository": "acme/web"}}
        agent_id, credential = await workload_agent(world, [rule], key=key)

        def platform_token() -> str:
            return github.github_token("acme/web", now=now_of(world))

        both = AgentClient(
            ISSUER,
            agent_id,
            _private(key),
            credential,
            http=world.client,
            clock=world.clock.now,
            platform_token=platform_token,
        )
        token = await both.token(*TOOL, audience=RS_AUDIENCE)
        assert token.token_type == "Bearer"
        key_only = AgentClient(
            ISSUER, agent_id, _private(key), credential, http=world.client, clock=world.clock.now
        )
        with pytest.raises(AuthorityClientError):
            await key_only.token(*TOOL, audience=RS_AUDIENCE)


def test_an_agent_proves_itself_somehow() -> None:
    with pytest.raises(ValueError, match="key, a platform token, or both"):
        AgentClient(ISSUER, "agt_1", None, "delegation")
