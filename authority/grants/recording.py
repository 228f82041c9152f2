"""The grant row and its ledger entry: what every decision on a token request writes.

An issued, denied or pending grant is one row in ``grants`` and one ``grant`` entry in
the ledger, written together or not at all (no token without its ledger entry). A
denial is a value (``Denied``), written once, at the edge of the flow that refused
(``deny``), then counted and weighed by containment (``after_denial``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, literal, select

from authority.context import Services
from authority.domain_events import ExchangeDenied
from authority.errors import AuthorityError
from authority.ledger.entries import entry_row
from authority.policy.checks import ToolCall
from authority.policy.reasons import Reason, error_for
from authority.secrets import new_id
from authority.storage import replay
from authority.storage.driver import Executes
from authority.storage.replay import SingleUse
from authority.storage.schema import grants, ledger_entries
from authority.storage.sql.ledger import COLUMNS as ENTRY_COLUMNS
from authority.storage.sql.ledger import INSERT as INSERT_ENTRY

log = logging.getLogger("authority.exchange")


@dataclass(frozen=True, slots=True)
class Denied:
    """A decision against the request, already written as a denied grant."""

    reason: Reason
    error: AuthorityError


@dataclass
class GrantRecord:
    """What the grant row and ledger entry say; filled in as the request is understood."""

    call: ToolCall
    audience: str
    client_assertion: bool = False  # how the agent authenticated (for the error code)
    agent_id: str | None = None
    owner_id: str | None = None
    delegation_id: str | None = None
    intent: str | None = None
    # The verified attestation's single use (storage.replay), and whether this request
    # has spent it: a denial counts against the agent only on the attestation's first use.
    attestation_claim: SingleUse | None = None
    attestation_claimed: bool = False


@dataclass(frozen=True, slots=True)
class GrantRows:
    """One grant row and its ledger entry's row, written together or not at all."""

    grant: dict[str, Any]
    entry: dict[str, Any]

    @property
    def grant_id(self) -> str:
        return str(self.grant["id"])

    def prefixed(self) -> dict[str, Any]:
        """Both rows as the parameters of the one-statement writes (``_pg_record``)."""
        params = {f"g_{name}": value for name, value in self.grant.items()}
        params.update({f"e_{name}": value for name, value in self.entry.items()})
        return params


def grant_rows(
    record: GrantRecord,
    *,
    now: int,
    decision: str,
    reason: Reason | None = None,
    jti: str | None = None,
    token_digest: str | None = None,
    expires_at: int | None = None,
    jkt: str | None = None,
    single_use: bool = False,
    approval_id: str | None = None,
) -> GrantRows:
    grant_id = new_id("grt")
    values = {
        "id": grant_id,
        "created_at": now,
        "decision": decision,
        "reason": reason.value if reason else None,
        "agent_id": record.agent_id,
        "owner_id": record.owner_id,
        "delegation_id": record.delegation_id,
        "tool": record.call.tool,
        "resource": record.call.resource,
        "action": record.call.action,
        "intent": record.intent,
        "audience": record.audience,
        "jti": jti,
        "token_hash": token_digest,
        "expires_at": expires_at,
        "cnf_jkt": jkt,
        "single_use": single_use,
    }
    ledger_record = {k: v for k, v in values.items() if k not in ("id", "created_at")}
    ledger_record["grant_id"] = grant_id
    if approval_id is not None:
        ledger_record["approval_id"] = approval_id
    if record.call.arguments_digest is not None:
        ledger_record["arguments_digest"] = record.call.arguments_digest
    entry = entry_row(kind="grant", version=2, created_at=now, record=ledger_record)
    return GrantRows(values, entry)


async def insert_grant(conn: Executes, rows: GrantRows) -> None:
    """Both rows, in the caller's transaction."""
    await conn.execute(_INSERT_GRANT, rows.grant)
    await conn.execute(INSERT_ENTRY, rows.entry)


async def write_grant(
    conn: Executes,
    record: GrantRecord,
    *,
    now: int,
    decision: str,
    reason: Reason | None = None,
    approval_id: str | None = None,
) -> str:
    """A grant row that issues nothing (denied, pending), in the caller's transaction."""
    rows = grant_rows(record, now=now, decision=decision, reason=reason, approval_id=approval_id)
    await insert_grant(conn, rows)
    return rows.grant_id


# Columns a new grant row leaves to their defaults (NULL): set later, by use or revocation.
_UNSET = ("consumed_at", "revoked_at")
_GRANT_COLUMNS = tuple(column.name for column in grants.c if column.name not in _UNSET)
_INSERT_GRANT = grants.insert().values({name: bindparam(name) for name in _GRANT_COLUMNS})


#: What an issued or denied exchange writes: (table, parameter prefix, columns, CTE name).
RECORDED = (
    (grants, "g_", _GRANT_COLUMNS, "granted"),
    (ledger_entries, "e_", ENTRY_COLUMNS, "entered"),
)


def _pg_record(source: Any = None, *, inserts: Sequence[Any] = RECORDED, result: Any = None) -> Any:
    """PostgreSQL: the grant and its ledger entry inserted by one statement.

    The rows' values are parameters ``g_<column>`` and ``e_<column>``
    (``GrantRows.prefixed``). With ``source`` (a CTE), both are inserted once per row it
    yields, so not at all when it yields none; the statement returns ``source``'s rows,
    or ``result`` when given.
    """
    inserted = []
    for table, prefix, columns, name in inserts:
        values = select(*(bindparam(prefix + c, type_=table.c[c].type) for c in columns))
        if source is not None:
            values = values.select_from(source)
        inserted.append(table.insert().from_select(columns, values).cte(name))
    if result is None:
        result = select(*source.c) if source is not None else select(literal(1).label("one"))
    return result.add_cte(*inserted)


_PG_RECORD = _pg_record()
#: Both rows of a denial, inserted only if the attestation's use is new (else no row).
_PG_CLAIM_AND_RECORD = _pg_record(replay.pg_claims(1)[0])


async def deny(services: Services, record: GrantRecord, reason: Reason, now: int) -> Denied:
    """Write the denied grant in its own transaction; the denial, to answer with.

    RFC 7523 §3 item 7: the attestation's jti is single use, also when the request it
    came with is refused, so a captured attestation cannot be replayed for another call;
    it is spent with the denial. One that was spent already is refused as replayed,
    whatever else was wrong with the request.
    """
    claim = record.attestation_claim
    uses = [claim] if claim is not None and not record.attestation_claimed else []
    rows = grant_rows(record, now=now, decision="denied", reason=reason)
    if services.sql.dialect == "postgresql":
        # One statement, so one round trip: it commits alone, the use and both rows, or
        # (a replay) the use alone.
        if not uses:
            await services.sql.commit_one(_PG_RECORD, rows.prefixed())
        else:
            params = {**replay.parameters(uses), **rows.prefixed()}
            record.attestation_claimed = (
                await services.sql.commit_one(_PG_CLAIM_AND_RECORD, params) is not None
            )
            if not record.attestation_claimed:
                reason = Reason.ATTESTATION_REPLAYED
                rows = grant_rows(record, now=now, decision="denied", reason=reason)
                await services.sql.commit_one(_PG_RECORD, rows.prefixed())
    else:
        async with services.sql.transaction() as tx:
            if uses:
                (record.attestation_claimed,) = await replay.spend(tx, "sqlite", uses)
                if not record.attestation_claimed:
                    reason = Reason.ATTESTATION_REPLAYED
                    rows = grant_rows(record, now=now, decision="denied", reason=reason)
            await insert_grant(tx, rows)
    return await after_denial(services, record, reason)


async def after_denial(services: Services, record: GrantRecord, reason: Reason) -> Denied:
    """Once a denied grant is committed: tell who counts it (metrics, containment)."""
    log.info("exchange denied: %s (agent=%s)", reason.value, record.agent_id)
    # Only an attestation's first use counts against its agent (containment).
    attributable = (
        record.attestation_claimed and record.agent_id is not None and record.owner_id is not None
    )
    await services.events.publish(
        ExchangeDenied(record.agent_id, record.owner_id, reason, attributable=attributable)
    )
    return Denied(reason, error_for(reason, client_assertion=record.client_assertion))
