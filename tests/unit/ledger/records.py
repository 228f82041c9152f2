"""Valid records of every entry kind, for the tests to append."""

from __future__ import annotations

from typing import Any


def grant(n: int, decision: str = "denied") -> dict[str, Any]:
    record: dict[str, Any] = {
        "grant_id": f"grt_{n:08d}",
        "decision": decision,
        "agent_id": f"agt_{n % 3}",
        "owner_id": f"own_{n % 2}",
        "delegation_id": f"dlg_{n % 5}",
        "tool": "github.issues.create" if n % 2 else "github.issues.list",
        "resource": "https://api.github.com/repos/acme/web",
        "action": "create",
    }
    if decision == "issued":
        record |= {"jti": f"jti_{n}", "token_hash": f"{n:064x}", "expires_at": 1_800_000_000 + n}
    else:
        record["reason"] = "delegation_revoked"
    return record


EXAMPLES: dict[str, dict[str, Any]] = {
    "grant": {**grant(1, "issued"), "policy_version": 2},
    "policy_changed": {
        "policy_version": 2,
        "change": "created",
        "digest": "sha-256:" + "A" * 43,
        "author": "key_admin",
        "actor": "key_admin",
        "previous_version": 1,
        "comment": "no deletes below autonomy 3",
    },
    "token_revoked": {"jti": "jti_1", "actor": "resource_server:rs_1", "reason": "rfc7009"},
    "delegation_created": {
        "delegation_id": "dlg_1",
        "owner_id": "own_1",
        "agent_id": "agt_1",
        "intent": "triage bugs in acme/web",
        "scope": [
            {"tool": "github.issues.create", "resources": ["acme/web/*"], "actions": ["create"]}
        ],
        "cnf_jkt": "a" * 43,
        "expires_at": 1_800_000_000,
        "max_calls": 100,
        "actor": "owner:own_1",
    },
    "delegation_revoked": {
        "delegation_id": "dlg_1",
        "owner_id": "own_1",
        "agent_id": "agt_1",
        "actor": "owner:own_1",
    },
    "agent_quarantined": {
        "agent_id": "agt_1",
        "owner_id": "own_1",
        "actor": "admin:ak_1",
        "reason": "suspicious",
    },
    "agent_released": {"agent_id": "agt_1", "owner_id": "own_1", "actor": "owner:own_1"},
    "agent_retired": {"agent_id": "agt_1", "owner_id": "own_1", "actor": "owner:own_1"},
    "owner_retired": {"owner_id": "own_1", "actor": "admin:key_1"},
    "kill_switch": {"owner_id": "own_1", "actor": "owner:own_1", "agent_count": 3},
    "approval_decided": {
        "approval_id": "apr_1",
        "decision": "approved",
        "owner_id": "own_1",
        "agent_id": "agt_1",
        "delegation_id": "dlg_1",
        "actor": "owner:own_1",
    },
    "autonomy_changed": {
        "agent_id": "agt_1",
        "owner_id": "own_1",
        "previous_level": 1,
        "level": 2,
        "actor": "owner:own_1",
    },
    "key_rotated": {"purpose": "ledger", "kid": "k2", "alg": "EdDSA", "actor": "admin:ak_1"},
    "agent_contained": {
        "agent_id": "agt_1",
        "owner_id": "own_1",
        "actor": "authority:containment",
        "violations": 10,
        "window": 60,
        "threshold": 10,
        "trigger": "tool_not_delegated",
        "containments": 1,
        "autonomy_level": 2,
    },
    "behaviour_step_up": {
        "approval_id": "apr_1",
        "agent_id": "agt_1",
        "owner_id": "own_1",
        "tool": "deploy.run",
        "deviation": "new_tool",
        "explanation": "first call to tool deploy.run after 1,200 calls to 3 tools",
    },
    "promotion_proposed": {
        "proposal_id": "prm_1",
        "agent_id": "agt_1",
        "owner_id": "own_1",
        "from_level": 1,
        "to_level": 2,
        "rule": "days >= 30 and calls >= 1000 and violations == 0",
        "days": 31,
        "calls": 1200,
        "violations": 0,
        "step_ups": 1,
    },
    "promotion_accepted": {
        "proposal_id": "prm_1",
        "agent_id": "agt_1",
        "owner_id": "own_1",
        "from_level": 1,
        "to_level": 2,
        "actor": "key_1",
    },
    "registry_changed": {
        "object_type": "tool",
        "object_id": "tool_1",
        "change": "updated",
        "changes": {
            "approval_required": False,
            "max_token_lifetime": None,
            "actions": ["create", "list"],
            "risk_tier": 2,
        },
        "keys": [{"kid": "k1", "thumbprint": "b" * 43}],
        "tool": "github.issues.create",
        "actor": "key_1",
    },
    "gateway_call": {
        "call_id": "cal_1",
        "gateway": "rs_1",
        "upstream": "github",
        "transport": "mcp",
        "method": "tools/call",
        "target": "github.issues.create",
        "outcome": "forwarded",
        "status": 200,
        "started_at_ms": 1_800_000_000_000,
        "duration_us": 1250,
        "jti": "jti_1",
        "grant_id": "grt_1",
        "agent_id": "agt_1",
        "owner_id": "own_1",
        "delegation_id": "dlg_1",
        "tool": "github.issues.create",
        "resource": "acme/web",
        "action": "create",
        "request": {
            "digest": "sha-256:" + "a" * 43,
            "size": 10,
            "head_digest": "sha-256:" + "a" * 43,
            "head_size": 10,
            "truncated": False,
        },
        "response": {
            "digest": "sha-256:" + "b" * 43,
            "size": 100_000,
            "head_digest": "sha-256:" + "c" * 43,
            "head_size": 65536,
            "truncated": True,
        },
        "masked": {"aws_access_key": 1},
    },
}
