"""Issuance: sign the access token (RFC 9068), spend one call and record the grant.

The one place a token is made, for the token exchange (RFC 8693) and the CIBA poll
alike. The token is signed first, then one transaction spends a call on the delegation
under a row lock that also holds the agent, owner, tool and resource server rows, claims
the attestation's and proof's single uses, and writes the grant and its ledger entry;
only after the commit does the token leave (``issue``). A spend that is refused writes
the denied grant with the rule that refused it (``_why_not_spent``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Integer, and_, bindparam, select, update

from authority.approvals import requests as approvals
from authority.context import Services
from authority.domain_events import ExchangeIssued
from authority.errors import InvalidGrant
from authority.policy.checks import AgentFacts, DelegationFacts, ToolCall, ToolFacts
from authority.policy.reasons import Reason
from authority.secrets import new_id, token_hash
from authority.storage import replay
from authority.storage.driver import Transaction
from authority.storage.replay import SingleUse
from authority.storage.schema import agents, delegations, owners, resource_servers, tools
from authority.tokens.access_token import AT_TYP, access_token_claims, authorization_detail

from . import recording
from .loading import Registered
from .recording import Denied, GrantRecord, GrantRows


@dataclass(frozen=True, slots=True)
class Issued:
    access_token: str
    token_type: str  # "Bearer" or "DPoP" (RFC 9449 §5)
    expires_in: int
    authorization_details: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Authorised:
    """One call that every rule allows now (exchange), or that the owner approved (CIBA)."""

    agent: AgentFacts
    delegation: DelegationFacts
    tool: ToolFacts
    call: ToolCall
    lifetime: int
    jkt: str | None  # the DPoP key the token is bound to (RFC 9449 cnf.jkt)
    registered: Registered  # what the decision read, compared again at the spend


async def issue(
    services: Services,
    record: GrantRecord,
    authorised: Authorised,
    now: int,
    *,
    uses: Sequence[SingleUse] = (),
    approval_row: Any = None,
) -> Issued | Denied:
    """Sign the token, then commit its grant; the token leaves only after the commit.

    The call is spent on the delegation under a row lock that also holds the agent,
    owner, tool and resource server rows, so a revocation, quarantine, kill switch or
    registry change that commits first refuses it (and is written as a denied grant);
    one that commits later revokes it or applies to the next call. ``uses`` (the
    attestation's and the proof's jtis) are spent by the same write: a replay issues
    nothing. With ``approval_row``, the approval is consumed in the same transaction:
    exactly one poll gets the token, and a refusal here ends the approval. A refusal is
    written as a denied grant and returned (``Denied``).
    """
    settings = services.settings
    agent, delegation, tool = authorised.agent, authorised.delegation, authorised.tool
    jti = new_id("at")
    expires_at = now + authorised.lifetime
    jkt = authorised.jkt
    token = services.keyring.sign(
        access_token_claims(
            issuer=settings.issuer,
            owner_id=agent.owner_id,
            agent_id=agent.id,
            audience=tool.audience,
            delegation_id=delegation.id,
            intent=delegation.intent,
            call=authorised.call,
            issued_at=now,
            expires_at=expires_at,
            jti=jti,
            jkt=jkt,
        ),
        typ=AT_TYP,
    )
    rows = recording.grant_rows(
        record,
        now=now,
        decision="issued",
        jti=jti,
        token_digest=token_hash(token),
        expires_at=expires_at,
        jkt=jkt,
        single_use=tool.single_use,
        approval_id=approval_row.id if approval_row is not None else None,
    )
    spend = {
        "p_delegation": delegation.id,
        "p_agent": agent.id,
        "p_now": now,
        **authorised.registered.parameters(),
    }
    refused = await _spend_and_record(services, record, spend, rows, uses, approval_row)
    if refused is not None:
        return await recording.after_denial(services, record, refused)
    await services.events.publish(ExchangeIssued(agent.id))
    return Issued(
        access_token=token,
        token_type="DPoP" if jkt else "Bearer",
        expires_in=authorised.lifetime,
        authorization_details=[authorization_detail(authorised.call, tool.audience)],
    )


class ApprovalUsed(InvalidGrant):
    """CIBA §11 invalid_grant: this approval's one token has been issued already."""

    default_description = "The auth_req_id is invalid, expired or already used."


def _spend_statement(gates: Sequence[Any] = ()) -> Any:
    """Spend one call, if the delegation, its agent, owner and tool are as decided.

    ``gates``: further conditions (the single-use claims of a one-statement write).
    """
    live = (
        select(delegations.c.id)
        .join(agents, agents.c.id == delegations.c.agent_id)
        .join(owners, owners.c.id == delegations.c.owner_id)
        .join(tools, tools.c.name == bindparam("r_tool"))
        .join(resource_servers, resource_servers.c.id == tools.c.resource_server_id)
        .where(
            delegations.c.id == bindparam("p_delegation"),
            delegations.c.agent_id == bindparam("p_agent"),
            delegations.c.status == "active",
            delegations.c.expires_at > bindparam("p_now"),
            agents.c.status == "active",
            owners.c.status == "active",
            *_REGISTERED_AS_DECIDED,
        )
        # FOR SHARE: a change to any of these rows waits for this grant's commit, and
        # one that committed first is seen here (PostgreSQL re-reads a locked row's
        # newest version and checks these conditions again on it).
        .with_for_update(read=True, of=[agents, owners, tools, resource_servers])
        .cte("live")
    )
    return (
        update(delegations)
        .where(
            delegations.c.id.in_(select(live.c.id)),
            # Repeated on the updated row itself: if a revocation committed while this
            # waited for the row lock, PostgreSQL re-checks these conditions on the new
            # version (READ COMMITTED), but not the CTE's, which keeps its snapshot.
            delegations.c.status == "active",
            delegations.c.expires_at > bindparam("p_now"),
            (delegations.c.max_calls.is_(None))
            | (delegations.c.calls_used < delegations.c.max_calls),
            *gates,
        )
        .values(calls_used=delegations.c.calls_used + 1)
        .returning(delegations.c.calls_used)
    )


#: The registrations the decision read (``Registered``), still as they were.
_REGISTERED_AS_DECIDED = (
    agents.c.jwks == bindparam("r_agent_jwks"),
    agents.c.autonomy_level == bindparam("r_autonomy_level"),
    tools.c.status == "active",
    tools.c.actions == bindparam("r_actions"),
    tools.c.read_actions == bindparam("r_read_actions"),
    tools.c.risk_tier == bindparam("r_risk_tier"),
    tools.c.approval_required == bindparam("r_approval_required", type_=Boolean),
    tools.c.single_use == bindparam("r_single_use", type_=Boolean),
    tools.c.dpop_required == bindparam("r_dpop_required", type_=Boolean),
    tools.c.max_token_lifetime.is_not_distinct_from(
        bindparam("r_max_token_lifetime", type_=Integer)
    ),
    resource_servers.c.status == "active",
    resource_servers.c.audience == bindparam("r_audience"),
)

_SPEND = _spend_statement()


def _pg_spend_and_record(claims: int, *, inserts: Sequence[Any] = recording.RECORDED) -> Any:
    """PostgreSQL: claim the uses, spend the call and write the grant, in one statement.

    The spend waits for every claim (a replay spends nothing); the uses are recorded
    whether or not the call is spent. It returns one row: ``calls_used`` (NULL when
    nothing was spent) and ``claimed_<i>`` for each use.
    """
    ctes = replay.pg_claims(claims)
    spent = _spend_statement(replay.all_claimed(ctes)).cte("spent")
    result = select(
        select(spent.c.calls_used).scalar_subquery().label("calls_used"),
        *replay.claimed_flags(ctes),
    )
    return recording._pg_record(spent, inserts=inserts, result=result)


_PG_SPEND_AND_RECORD = tuple(_pg_spend_and_record(n) for n in range(replay.MOST + 1))


def replayed(claimed: Sequence[bool]) -> Reason | None:
    """The replay among the uses just claimed (attestation first, then DPoP proof)."""
    if claimed and not claimed[0]:
        return Reason.ATTESTATION_REPLAYED
    if len(claimed) > 1 and not claimed[1]:
        return Reason.DPOP_REPLAYED
    return None


async def _spend_and_record(
    services: Services,
    record: GrantRecord,
    spend: dict[str, Any],
    rows: GrantRows,
    uses: Sequence[SingleUse],
    approval_row: Any,
) -> Reason | None:
    """Spend one call on the delegation and write the issued grant with its entry.

    None when issued. Otherwise nothing is spent or issued, and the denied grant is
    written with the rule that refused it (returned): a replayed attestation or proof,
    the delegation, its agent or its owner no longer live, the call cap reached, or a
    registration changed since the decision. On PostgreSQL the spend holds the agent,
    owner, tool and resource server rows FOR SHARE and updates the delegation row, so a
    concurrent revocation, quarantine, kill switch or registry change either commits
    first (and nothing is spent) or waits for this grant to commit (and then revokes it
    too). SQLite serialises writers (BEGIN IMMEDIATE), which gives the same order. With
    ``approval_row``, the approval is consumed in the same transaction: exactly one poll
    gets its token.
    """
    now = spend["p_now"]
    if approval_row is None and services.sql.dialect == "postgresql":
        # Claims, spend and both inserts as one statement: one round trip instead of
        # seven. A refusal, rare, is explained and written in a transaction of its own.
        params = {**spend, **replay.parameters(uses), **rows.prefixed()}
        row = await services.sql.commit_one(_PG_SPEND_AND_RECORD[len(uses)], params)
        if row is None:  # the statement always returns its one row
            raise RuntimeError("the spend statement returned no row")
        claimed = tuple(bool(row[f"claimed_{i}"]) for i in range(len(uses)))
        if uses:
            record.attestation_claimed = claimed[0]
        if row.calls_used is not None:
            return None
        async with services.sql.transaction() as tx:
            return await _write_refusal(tx, services, record, spend, approval_row, claimed)
    async with services.sql.transaction() as tx:
        claimed = await replay.spend(tx, services.sql.dialect, uses)
        if uses:
            record.attestation_claimed = claimed[0]
        if replayed(claimed) is not None or await tx.fetchrow(_SPEND, spend) is None:
            return await _write_refusal(tx, services, record, spend, approval_row, claimed)
        if approval_row is not None and not await approvals.consume(tx, approval_row.id, now):
            # Another poll has taken this approval's one token: roll everything back.
            raise ApprovalUsed()
        await recording.insert_grant(tx, rows)
    return None


async def _write_refusal(
    tx: Transaction,
    services: Services,
    record: GrantRecord,
    spend: dict[str, Any],
    approval_row: Any,
    claimed: Sequence[bool] = (),
) -> Reason:
    """The denial of a call that could not be spent, with the rule that refused it."""
    now = spend["p_now"]
    refused = replayed(claimed) or await _why_not_spent(tx, spend)
    await recording.write_grant(tx, record, now=now, decision="denied", reason=refused)
    if approval_row is not None:
        await approvals.refuse_at_issue(tx, approval_row, refused.value, now)
    return refused


_WHY_NOT_SPENT = (
    select(
        delegations.c.status,
        delegations.c.expires_at,
        delegations.c.max_calls,
        delegations.c.calls_used,
        agents.c.status.label("agent_status"),
        owners.c.status.label("owner_status"),
        tools.c.status.label("tool_status"),
        resource_servers.c.status.label("server_status"),
        and_(*_REGISTERED_AS_DECIDED).label("as_decided"),
    )
    .join(
        agents,
        and_(agents.c.id == delegations.c.agent_id, agents.c.id == bindparam("p_agent")),
    )
    .join(owners, owners.c.id == delegations.c.owner_id)
    .outerjoin(tools, tools.c.name == bindparam("r_tool"))
    .outerjoin(resource_servers, resource_servers.c.id == tools.c.resource_server_id)
    .where(delegations.c.id == bindparam("p_delegation"))
)


async def _why_not_spent(tx: Transaction, spend: Mapping[str, Any]) -> Reason:
    """After a refused spend: which rule refused it (in the same transaction on SQLite)."""
    row = await tx.fetchrow(_WHY_NOT_SPENT, spend)
    if row is None:
        return Reason.DELEGATION_INVALID
    if row.agent_status != "active":
        return Reason.AGENT_INACTIVE
    if row.owner_status != "active":
        return Reason.OWNER_INACTIVE
    if row.status != "active":
        return Reason.DELEGATION_REVOKED
    if row.expires_at <= spend["p_now"]:
        return Reason.DELEGATION_EXPIRED
    if row.tool_status != "active" or row.server_status != "active":
        return Reason.TOOL_INACTIVE
    if not row.as_decided:
        return Reason.REGISTRATION_CHANGED
    if row.max_calls is not None and row.calls_used >= row.max_calls:
        return Reason.CALL_CAP_EXHAUSTED
    # Nothing refuses it now (PostgreSQL reads each statement's own snapshot): a status
    # that refused the spend has been reversed since, and of the rules the spend checks
    # only statuses are reversible (an agent released from quarantine, mostly).
    return Reason.AGENT_INACTIVE
