"""The token exchange (RFC 8693) and the CIBA poll on the in-memory ports, with a frozen clock.

No HTTP and no database: the flows (``grants.token_exchange.exchange``,
``grants.ciba.poll``) are called with the requests the token endpoint would parse, on a
``Services`` whose storage ports are ``storage.memory`` and whose engine and driver fail
any use. The rows are ``storage.memory.Tables``; what the flows wrote is read there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from authority.approvals.webhook_signing import SecretSealer
from authority.clock import FrozenClock
from authority.context import Services
from authority.errors import AccessDenied, AuthorizationPending, InvalidGrant, SlowDown
from authority.grants import ciba, loading, token_exchange
from authority.grants.agent_auth import Presented
from authority.grants.ciba import PollRequest
from authority.grants.delegations import DELEGATION_TYP
from authority.grants.issuance import Issued
from authority.grants.recording import Denied
from authority.grants.token_exchange import ExchangeRequest, Pending
from authority.ledger.schemas import parse_body
from authority.metrics import Metrics
from authority.policy.active import ActivePolicy
from authority.policy.checks import ToolCall
from authority.policy.reasons import Reason
from authority.secrets import SecretHasher
from authority.settings import Settings
from authority.storage.hot import MemoryHotState
from authority.storage.memory import Tables
from authority.storage.memory.clients import MemoryClientStore
from authority.storage.memory.exchange import MemoryExchangeStore
from authority.storage.memory.introspection import MemoryIntrospectionStore
from authority.storage.memory.policies import MemoryPolicyStore
from authority.storage.memory.revocation import MemoryRevocationStore
from authority.tokens.inbound import key_set, peek
from authority.tokens.keyring import Keyring
from authority.tokens.keys import StoredKey
from tests.support import ISSUER, TOKEN_URL, AgentKey

NOW = 1_800_000_000
SECRET = "memory-test-secret-with-at-least-32-chars"
AUDIENCE = "https://tools.example.test"


class _NoDatabase:
    """Stands for the engine and the driver: the flows on memory ports never touch them."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the database was used ({name})")


#: The ports of ``Services`` the exchange and the CIBA poll have no business with.
_OTHER_PORTS = (
    "ledger_reader",
    "sequencer_store",
    "event_reader",
    "delegation_store",
    "approval_decision_store",
    "webhook_store",
    "controls_store",
    "containment_store",
    "recording_store",
    "owner_store",
    "agent_store",
    "api_key_store",
    "resource_server_store",
    "tool_store",
    "trust_domain_store",
    "console_store",
    "behaviour_store",
    "recording_sealer",
)


class _MemoryKeys:
    """The keyring's store (``tokens.keyring.KeyStore``), enough to load and sign."""

    def __init__(self) -> None:
        self.keys: list[StoredKey] = []

    async def published(self, now: int) -> Sequence[StoredKey]:
        return list(self.keys)

    async def create_first(self, values: dict[str, Any], *, actor: str) -> bool:
        fields = StoredKey.__dataclass_fields__
        stored = {"publish_until": None, **{k: v for k, v in values.items() if k in fields}}
        self.keys.append(StoredKey(**stored))
        return True

    async def schedule(
        self, values: dict[str, Any], *, actor: str
    ) -> tuple[str | None, str | None]:
        raise NotImplementedError

    async def promote(self, *args: Any, **kwargs: Any) -> bool:
        raise NotImplementedError

    async def all_keys(self) -> list[Any]:
        raise NotImplementedError


@dataclass
class Memory:
    services: Services
    tables: Tables
    clock: FrozenClock
    agent: AgentKey
    credential: str  # the delegation credential (subject_token)

    def grants(self) -> list[tuple[str, str | None]]:
        # In the order written (the memory tables keep insertion order).
        return [(r["decision"], r["reason"]) for r in self.tables.grants.values()]

    def entries(self) -> list[dict[str, Any]]:
        return [parse_body(row["body"])[0] for row in self.tables.ledger_entries]

    def presented(self, **overrides: Any) -> Presented:
        values: dict[str, Any] = {
            "assertion": self.agent.attestation("agt_1", self.clock.now()),
            "via_client_assertion": False,
            "client_id": None,
            "dpop_proof": None,
            "method": "POST",
            "url": TOKEN_URL,
            "subject_token": self.credential,
        }
        values.update(overrides)
        return Presented(**values)

    def exchange_request(
        self, tool: str = "files.read", resource: str = "docs/a", action: str = "read", **kw: Any
    ) -> ExchangeRequest:
        return ExchangeRequest(
            presented=self.presented(**kw),
            resource=AUDIENCE,
            call=ToolCall(tool=tool, resource=resource, action=action),
            lifetime=None,
        )

    def poll_request(self, auth_req_id: str) -> PollRequest:
        return PollRequest(
            auth_req_id, self.presented(via_client_assertion=True, subject_token=None)
        )


@pytest.fixture
async def memory(tmp_path: Path) -> Memory:
    settings = Settings(secret_key=SECRET, issuer=ISSUER, data_dir=tmp_path, auto_migrate=False)
    clock = FrozenClock(float(NOW))
    tables = Tables()
    no_database = cast(Any, _NoDatabase())
    secret = SECRET.encode()
    keyring = Keyring(_MemoryKeys(), clock, settings, secret_key=secret)
    await keyring.load()
    services = Services(
        settings=settings,
        clock=clock,
        engine=no_database,
        reader=no_database,
        sql=no_database,
        hot=MemoryHotState(),
        hasher=SecretHasher(secret),
        # The policy's versions in memory too, confirmed on every decision.
        policy=ActivePolicy(MemoryPolicyStore(tables), interval=0, timeout=5),
        policy_store=MemoryPolicyStore(tables),
        keyring=keyring,
        introspection_store=MemoryIntrospectionStore(tables),
        revocation_store=MemoryRevocationStore(tables),
        exchange_store=MemoryExchangeStore(tables),
        client_store=MemoryClientStore(tables),
        metrics=Metrics(settings.metrics_max_agents),
        webhook_sealer=SecretSealer(secret),
        # The other flows' ports: an exchange or a poll must not reach any of them.
        **{name: no_database for name in _OTHER_PORTS},
    )
    services.baselines.load([])  # as the first fold at start would: no agent has called
    agent = AgentKey()
    jwks = json.dumps(agent.jwks())
    jkt = key_set(jwks).keys[0].thumbprint()
    stamps = {"created_at": NOW - 100, "updated_at": NOW - 100}
    tables.owners["own_1"] = {"id": "own_1", "name": "owner", "status": "active", **stamps}
    tables.agents["agt_1"] = {
        "id": "agt_1",
        "owner_id": "own_1",
        "name": "agent",
        "status": "active",
        "autonomy_level": 2,
        "jwks": jwks,
        **stamps,
    }
    tables.resource_servers["rs_1"] = {
        "id": "rs_1",
        "name": "tools",
        "audience": AUDIENCE,
        "auth_method": "client_secret_basic",
        "secret_hash": None,
        "jwks": None,
        "status": "active",
        **stamps,
    }
    for tool_id, name, risk in (("tool_1", "files.read", 1), ("tool_2", "deploy.run", 3)):
        tables.tools[tool_id] = {
            "id": tool_id,
            "name": name,
            "resource_server_id": "rs_1",
            "actions": '["read"]',
            "read_actions": "[]",
            "risk_tier": risk,
            "approval_required": False,
            "single_use": False,
            "dpop_required": False,
            "max_token_lifetime": None,
            "status": "active",
            **stamps,
        }
    scope = [
        {"tool": "files.read", "resources": ["docs/*"], "actions": ["read"]},
        {"tool": "deploy.run", "resources": ["prod/*"], "actions": ["read"]},
    ]
    tables.delegations["dlg_1"] = {
        "id": "dlg_1",
        "owner_id": "own_1",
        "agent_id": "agt_1",
        "intent": "read the docs",
        "scope": json.dumps(scope),
        "cnf_jkt": jkt,
        "expires_at": NOW + 3600,
        "max_calls": None,
        "rate_per_minute": None,
        "calls_used": 0,
        "status": "active",
        "created_at": NOW - 100,
    }
    credential = keyring.sign(
        {
            "iss": ISSUER,
            "aud": ISSUER,
            "sub": "own_1",
            "client_id": "agt_1",
            "jti": "dlg_1",
            "iat": NOW - 100,
            "exp": NOW + 3600,
            "cnf": {"jkt": jkt},
        },
        typ=DELEGATION_TYP,
    )
    return Memory(services, tables, clock, agent, credential)


# --- the exchange ---------------------------------------------------------------------------
async def test_an_exchange_issues_the_token_and_records_its_grant(memory: Memory) -> None:
    issued = await token_exchange.exchange(memory.services, memory.exchange_request())
    assert isinstance(issued, Issued) and issued.token_type == "Bearer"
    claims = peek(issued.access_token).claims
    assert (claims["sub"], claims["client_id"], claims["aud"]) == ("own_1", "agt_1", AUDIENCE)
    assert memory.grants() == [("issued", None)]
    [grant] = memory.tables.grants.values()
    assert grant["jti"] == claims["jti"] and grant["token_hash"] is not None
    [entry] = memory.entries()
    assert (entry["kind"], entry["decision"], entry["grant_id"]) == ("grant", "issued", grant["id"])
    assert memory.tables.delegations["dlg_1"]["calls_used"] == 1
    assert len(memory.tables.used_jtis) == 1  # the attestation, spent with the grant


async def test_a_call_outside_the_delegation_is_denied_with_its_reason(memory: Memory) -> None:
    denied = await token_exchange.exchange(
        memory.services, memory.exchange_request(resource="secrets/x")
    )
    assert isinstance(denied, Denied)
    assert denied.reason is Reason.RESOURCE_NOT_DELEGATED
    assert denied.error.error == "invalid_scope"
    assert memory.grants() == [("denied", "resource_not_delegated")]
    assert [e["reason"] for e in memory.entries()] == ["resource_not_delegated"]
    assert memory.tables.delegations["dlg_1"]["calls_used"] == 0
    assert len(memory.tables.used_jtis) == 1  # spent with the denial (RFC 7523 §3 item 7)


async def test_a_replayed_attestation_gets_one_token(memory: Memory) -> None:
    attestation = memory.agent.attestation("agt_1", NOW)
    first = await token_exchange.exchange(
        memory.services, memory.exchange_request(assertion=attestation)
    )
    again = await token_exchange.exchange(
        memory.services, memory.exchange_request(assertion=attestation)
    )
    assert isinstance(first, Issued)
    assert isinstance(again, Denied) and again.reason is Reason.ATTESTATION_REPLAYED
    assert memory.grants() == [("issued", None), ("denied", "attestation_replayed")]
    assert memory.tables.delegations["dlg_1"]["calls_used"] == 1


async def test_a_registration_changed_during_the_decision_refuses_the_spend(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = loading.load

    async def load_then_raise_risk(*args: Any) -> loading.Loaded:
        loaded = await original(*args)
        memory.tables.tools["tool_1"]["risk_tier"] = 2
        return loaded

    monkeypatch.setattr(loading, "load", load_then_raise_risk)
    denied = await token_exchange.exchange(memory.services, memory.exchange_request())
    assert isinstance(denied, Denied) and denied.reason is Reason.REGISTRATION_CHANGED
    assert memory.grants() == [("denied", "registration_changed")]
    assert memory.tables.delegations["dlg_1"]["calls_used"] == 0


# --- approval and the CIBA poll ---------------------------------------------------------------
async def ask(memory: Memory) -> Pending:
    pending = await token_exchange.exchange(
        memory.services, memory.exchange_request(tool="deploy.run", resource="prod/web")
    )
    assert isinstance(pending, Pending), pending
    return pending


async def test_a_risky_call_is_sent_for_approval(memory: Memory) -> None:
    pending = await ask(memory)
    assert (pending.expires_in, pending.interval) == (300, 5)
    [approval] = memory.tables.approvals.values()
    assert (approval["status"], approval["agent_id"], approval["reason"]) == (
        "pending",
        "agt_1",
        "autonomy_too_low",
    )
    assert pending.auth_req_id not in json.dumps(memory.tables.approvals)  # only its hash
    assert memory.grants() == [("pending", "autonomy_too_low")]
    assert memory.entries()[0]["approval_id"] == approval["id"]


async def test_a_poll_waits_then_redeems_the_approval_once(memory: Memory) -> None:
    pending = await ask(memory)
    services, poll = memory.services, memory.poll_request
    with pytest.raises(AuthorizationPending):
        await ciba.poll(services, poll(pending.auth_req_id))
    with pytest.raises(SlowDown):  # sooner than the interval
        await ciba.poll(services, poll(pending.auth_req_id))
    [approval] = memory.tables.approvals.values()
    assert approval["poll_interval"] == 10
    approval["status"] = "approved"  # the owner's decision (approvals.decisions)
    memory.clock.advance(1)
    issued = await ciba.poll(services, poll(pending.auth_req_id))
    assert isinstance(issued, Issued)
    assert peek(issued.access_token).claims["authorization_details"][0]["tool"] == "deploy.run"
    assert approval["status"] == "used"
    with pytest.raises(InvalidGrant):  # the approval was for one call
        await ciba.poll(services, poll(pending.auth_req_id))
    assert memory.grants() == [("pending", "autonomy_too_low"), ("issued", None)]
    assert memory.entries()[-1]["approval_id"] == approval["id"]


async def test_an_approved_call_a_rule_now_refuses_closes_the_approval(memory: Memory) -> None:
    pending = await ask(memory)
    [approval] = memory.tables.approvals.values()
    approval["status"] = "approved"
    memory.tables.tools["tool_2"]["status"] = "retired"
    with pytest.raises(AccessDenied):
        await ciba.poll(memory.services, memory.poll_request(pending.auth_req_id))
    assert (approval["status"], approval["decision_reason"]) == ("denied", "tool_inactive")
    assert memory.grants()[-1] == ("denied", "tool_inactive")
    assert [e["kind"] for e in memory.entries()] == ["grant", "grant", "approval_decided"]
