"""Each condition of an active answer on its own: remove any one and its case here fails.

The HTTP tests (test_introspection.py) show the answers a resource server sees; several
conditions overlap there (a re-signed token fails the hash check and the claim checks),
so each condition is also checked alone against a grant row that passes all the others.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from authority.grants.introspection import _is_active
from authority.secrets import token_hash
from authority.tokens.validate import OwnToken

NOW = 1_800_000_000
AUDIENCE = "https://tools.example.test"
RAW = "header.payload.signature"
DIGEST = token_hash(RAW)


def token(**claims: Any) -> OwnToken:
    base = {
        "aud": AUDIENCE,
        "delegation_id": "dlg_1",
        "client_id": "agt_1",
        "sub": "own_1",
        "exp": NOW + 5,
        "jti": "at_1",
    }
    merged = {**base, **claims}
    return OwnToken(typ="at+jwt", claims=merged, jti="at_1", exp=int(merged["exp"]))


def row(**columns: Any) -> SimpleNamespace:
    base = {
        "grant_id": "grt_1",
        "decision": "issued",
        "grant_audience": AUDIENCE,
        "token_hash": DIGEST,
        "grant_expires_at": NOW + 5,
        "revoked_at": None,
        "single_use": False,
        "consumed_at": None,
        "delegation_id": "dlg_1",
        "agent_id": "agt_1",
        "owner_id": "own_1",
        "delegation_status": "active",
        "delegation_expires_at": NOW + 3600,
        "agent_status": "active",
        "owner_status": "active",
        "tool_status": "active",
        "tool_server_id": "rs_1",
        "rs_id": "rs_1",  # the caller
        "rs_status": "active",
    }
    return SimpleNamespace(**{**base, **columns})


def test_the_base_case_is_active() -> None:
    assert _is_active(row(), token(), DIGEST, AUDIENCE, NOW) is True
    # A single-use token that has not been consumed is still active (then consumed).
    assert _is_active(row(single_use=True), token(), DIGEST, AUDIENCE, NOW) is True


@pytest.mark.parametrize(
    "columns",
    [
        {"grant_id": None},  # no grant row
        {"decision": "denied"},
        {"grant_audience": "https://other.example.test"},  # granted for another server
        {"token_hash": token_hash("another token")},  # these bytes were never issued
        {"token_hash": None},
        {"grant_expires_at": NOW},
        {"revoked_at": NOW - 1},  # the token revoked
        {"single_use": True, "consumed_at": NOW - 1},  # consumed
        {"delegation_id": "dlg_2"},  # the grant is not what the token claims
        {"agent_id": "agt_2"},
        {"owner_id": "own_2"},
        {"delegation_status": "revoked"},
        {"delegation_status": None},
        {"delegation_expires_at": NOW},
        {"agent_status": "quarantined"},
        {"agent_status": None},
        {"owner_status": "suspended"},
        {"owner_status": None},
        {"tool_status": "retired"},  # the tool retired after the token was issued
        {"tool_status": None},  # no such tool (any more)
        {"tool_server_id": "rs_2"},  # the tool is hosted elsewhere now
        {"tool_server_id": None},
        {"rs_status": "retired"},  # the resource server deactivated
    ],
)
def test_each_grant_condition_alone_makes_it_inactive(columns: dict[str, Any]) -> None:
    assert _is_active(row(**columns), token(), DIGEST, AUDIENCE, NOW) is False


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://other.example.test"},
        {"aud": [AUDIENCE, "https://other.example.test"]},
        {"exp": NOW},
        {"delegation_id": "dlg_2"},
        {"client_id": "agt_2"},
        {"sub": "own_2"},
    ],
)
def test_each_token_condition_alone_makes_it_inactive(claims: dict[str, Any]) -> None:
    assert _is_active(row(), token(**claims), DIGEST, AUDIENCE, NOW) is False


def test_a_caller_without_an_audience_gets_nothing() -> None:
    assert _is_active(row(), token(), DIGEST, None, NOW) is False
    assert _is_active(row(), token(), DIGEST, "https://other.example.test", NOW) is False
