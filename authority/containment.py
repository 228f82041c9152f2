"""Automatic containment: an agent that keeps overstepping is quarantined by the authority.

What counts (a "violation"), per agent:

* a denied exchange whose reason says the agent asked for something it was not given
  (``VIOLATIONS``: a tool, resource or action outside its delegation, a delegation not its
  own or revoked, a policy forbid, ...). Limits doing their job (rate, call cap), expiry,
  replays and denials of an agent that is already stopped do not count;
* an introspection that finds one of its genuine, unexpired tokens (our signature, the
  grant's hash) presented at a resource server it was not issued for (``aud`` and the
  grant's audience are another server's). Only the agent sends its tokens out; the
  server they are meant for has no business passing them on. Each token counts once,
  however often it is asked about.

The rule for introspection: an inactive answer counts only when its cause is something
the agent alone can have done; anything the introspecting resource server, the owner or
an admin can bring about by themselves never counts. So these never count:

* a revoked token, whoever revoked it: the resource server (RFC 7009 lets it revoke the
  tokens meant for it; revoking and then introspecting its own tokens is its own doing),
  the agent (it gave the token up; a call already on its way when it did is a race, and
  presenting it afterwards gets it nothing), or the owner (a revoked delegation);
* a single-use token already consumed, asked about again at its own resource server:
  that server retrying is indistinguishable from the agent presenting it twice, only
  the server sees the presentations, and either way the answer is no. At any other
  server it is a wrong audience and counts as such;
* an expired token (lateness); a token whose delegation is revoked or expired, whose
  agent is quarantined or retired or whose owner is stopped (the owner's doing, or the
  agent is contained already); a token whose tool was retired or whose resource server
  was deactivated (an admin's doing).

A single resource server therefore cannot raise an agent's count at all: the only tokens
it holds legitimately are its own, and whatever it does with those never counts. The
limit: two registered servers in collusion (or a compromised one handing on the tokens
it receives) can present a token meant for one at the other, which looks exactly like
the agent sending it there. Each token still counts once, and the log names the server
that presented it.

Only what provably comes from the agent counts. A denial counts only after the agent
authenticated, and only on the first use of that attestation: a forged attestation never
authenticates, and a captured one, replayed by someone else, is refused as a replay before
it could count again (the attestation's jti is claimed in hot state before counting).

The count is a rolling window in shared hot state (the sliding-window estimate: this
window's count plus the previous window's, weighted by how much of it still overlaps),
so every instance adds to the same figure. When it reaches ``containment_threshold``
within ``containment_window`` seconds, the agent is quarantined at once through the
owner's own quarantine path (``management.lifecycle.quarantine``: every live token
inactive, every exchange refused, a revocation event on the feed), with the authority as
the actor and the figures as the reason; the owner is notified (webhook), and the ledger
records why (``agent_contained``). A containment within ``containment_memory`` of an
earlier one also lowers the agent's autonomy level by one (``autonomy_changed``). Only an
explicit release by the owner (or an admin) lifts the quarantine.

Failures here never fail or slow the request that triggered them beyond the quarantine
itself: hot state that cannot be reached means "not counted", with a log line.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

from authority import metrics
from authority.context import Services
from authority.domain_events import AgentContained, ExchangeDenied, InactiveTokenPresented
from authority.errors import AuthorityError
from authority.ledger.entries import Entry
from authority.management import lifecycle
from authority.policy.reasons import Reason
from authority.storage.containment import Account, History, NotRecorded
from authority.storage.hot import Claim, HotStateUnavailable

from . import containment_window as window

log = logging.getLogger("authority.containment")

#: The actor of every automatic quarantine and demotion, in the ledger and on the agent.
ACTOR: Final = "authority:containment"

#: Denial reasons that mean "the agent asked for what it was not given".
VIOLATIONS: Final[frozenset[Reason]] = frozenset(
    {
        Reason.DELEGATION_INVALID,
        Reason.DELEGATION_WRONG_AGENT,
        Reason.DELEGATION_KEY_MISMATCH,
        Reason.DELEGATION_REVOKED,
        Reason.TOOL_UNKNOWN,
        Reason.TOOL_INACTIVE,
        Reason.TOOL_NOT_DELEGATED,
        Reason.RESOURCE_NOT_DELEGATED,
        Reason.ACTION_NOT_DELEGATED,
        Reason.ACTION_UNKNOWN,
        Reason.AUDIENCE_MISMATCH,
        Reason.LIFETIME_TOO_LONG,
        Reason.DPOP_REQUIRED,
        Reason.DPOP_INVALID,
        Reason.POLICY_DENIED,
    }
)

# The introspection failure that counts, as its trigger code in the ledger.
WRONG_AUDIENCE: Final = "introspection_wrong_audience"

# How long the one instance that contains an agent holds the right to (it lets go at the
# end; the ttl only matters if it died half way).
_LOCK_TTL: Final = 30.0


def _enabled(services: Services) -> bool:
    return services.settings.containment_threshold > 0


async def note_denial(
    services: Services,
    *,
    agent_id: str,
    owner_id: str,
    reason: Reason,
    first_use: Claim | None,
) -> None:
    """A denied exchange of an authenticated agent.

    ``first_use``: the attestation's replay-cache entry when this request has not claimed
    it yet; the denial counts only if claiming it now succeeds (first use). None: the
    request claimed it already, so it was the first use.
    """
    if not _enabled(services) or reason not in VIOLATIONS:
        return
    started = metrics.request_started()
    try:
        if first_use is not None and not await services.hot.claim(first_use.key, first_use.ttl):
            log.info("denial for %s not counted: attestation already used", agent_id)
            return
        await count(services, agent_id, owner_id, reason.value, started)
    except HotStateUnavailable as exc:
        log.warning("containment: violation of %s not counted (%s)", agent_id, exc)


async def note_inactive_token(
    services: Services,
    row: Any,
    claims: Mapping[str, Any],
    exp: int,
    digest: str,
    audience: str | None,
    now: int,
) -> None:
    """An introspection that answered inactive; counts if the agent sent its token astray.

    ``row``: introspection's joined row (the caller's registration; grant, delegation,
    agent and owner state); ``claims``/``exp``: the verified token's; ``digest``: the
    presented token's hash; ``audience``: the calling resource server's. Never raises.
    """
    if not _enabled(services):
        return
    try:
        cause = _misuse(row, claims, exp, digest, audience, now)
        if cause is None:
            return
        started = metrics.request_started()
        jti = str(claims.get("jti"))
        # One count per token, however often it is presented.
        if not await services.hot.claim(
            f"contain:token:{jti}", max(1, exp - now + services.settings.clock_skew)
        ):
            return
        log.info(
            "token %s of agent %s presented at resource server %s (%s)",
            jti,
            row.agent_id,
            row.rs_id,
            cause,
        )
        await count(services, str(row.agent_id), str(row.owner_id), cause, started)
    except Exception as exc:
        log.warning("containment: introspection failure not counted (%s)", type(exc).__name__)


def _misuse(
    row: Any, claims: Mapping[str, Any], exp: int, digest: str, audience: str | None, now: int
) -> str | None:
    """The trigger, when the inactive answer is the agent's doing (see the module doc)."""
    genuine = (
        row.grant_id is not None
        and row.decision == "issued"
        and row.token_hash == digest
        and claims.get("client_id") == row.agent_id
    )
    # An expired token is ordinary lateness; a stopped agent or owner is already contained.
    if not genuine or exp <= now or row.agent_status != "active" or row.owner_status != "active":
        return None
    if audience is not None and (claims.get("aud") != audience or row.grant_audience != audience):
        return WRONG_AUDIENCE
    # Everything else (revoked by anyone, consumed, a revoked or expired delegation, a
    # retired tool or server) is someone else's doing, or indistinguishable from it.
    return None


async def on_denial(services: Services, event: ExchangeDenied) -> None:
    """``ExchangeDenied``: weigh a denial the agent provably made (see the module doc)."""
    if event.attributable and event.agent_id is not None and event.owner_id is not None:
        await note_denial(
            services,
            agent_id=event.agent_id,
            owner_id=event.owner_id,
            reason=event.reason,
            first_use=event.first_use,
        )


async def on_inactive_token(services: Services, event: InactiveTokenPresented) -> None:
    """``InactiveTokenPresented``: weigh whether the agent sent its token astray."""
    await note_inactive_token(
        services, event.row, event.claims, event.exp, event.token_hash, event.audience, event.now
    )


async def violations(services: Services, agent_id: str) -> float:
    """The agent's rolling count now (for tests and operators)."""
    return await window.read(services.hot, agent_id, services.now(), _window(services))


def _window(services: Services) -> int:
    return services.settings.containment_window


async def count(
    services: Services, agent_id: str, owner_id: str, trigger: str, started: float
) -> None:
    """One violation of the agent in its rolling window; quarantined at the threshold."""
    settings = services.settings
    count, keys = await window.add(services.hot, agent_id, services.now(), _window(services))
    if count >= settings.containment_threshold:
        await contain(
            services,
            agent_id=agent_id,
            owner_id=owner_id,
            trigger=trigger,
            count=count,
            started=started,
            keys=keys,
        )


async def contain(
    services: Services,
    *,
    agent_id: str,
    owner_id: str,
    trigger: str,
    count: float,
    started: float,
    keys: tuple[str, ...] = (),
) -> bool:
    """Quarantine the agent now; True if this call did it."""
    settings = services.settings
    lock = f"contain:lock:{agent_id}"
    if not await services.hot.claim(lock, _LOCK_TTL):
        return False  # another request (on any instance) is containing it right now
    try:
        if await services.containment_store.agent_status(agent_id) != "active":
            return False
        reason = (
            f"automatic containment: {count:.0f} violations within "
            f"{settings.containment_window} s (threshold {settings.containment_threshold}); "
            f"last: {trigger}"
        )
        try:
            # The authority acts as itself, with an admin's reach: any owner's agent, and
            # it takes over a quarantine no admin made (as an admin's would).
            await lifecycle.quarantine(
                services, agent_id, actor=ACTOR, reason=reason, overrides=True
            )
        except AuthorityError as exc:  # retired or gone meanwhile
            log.info("containment of %s not done: %s", agent_id, exc.error)
            return False
        # Committed and published: in force on every instance from here on.
        elapsed = time.perf_counter() - started
        try:
            level, containments, demoted = await _record(
                services, agent_id, owner_id, trigger, count
            )
        except NotRecorded as exc:
            # The quarantine (with its reason) is committed and in the ledger already; only
            # the figures and the demotion are missing. The request that triggered it
            # still gets its own answer.
            log.error("containment of %s: figures not recorded (%s)", agent_id, exc)
            level, containments, demoted = -1, 0, False
        for key in keys:  # a released agent starts from zero
            await services.hot.delete(key)
    finally:
        with contextlib.suppress(HotStateUnavailable):
            await services.hot.delete(lock)
    log.warning(
        "agent %s quarantined automatically in %.1f ms (%s); containment %d, autonomy %d",
        agent_id,
        elapsed * 1000,
        trigger,
        containments,
        level,
    )
    # The owner's notice and the figures (authority.subscribers).
    await services.events.publish(
        AgentContained(
            agent_id=agent_id,
            owner_id=owner_id,
            reason=reason,
            trigger=trigger,
            violations=count,
            window=settings.containment_window,
            threshold=settings.containment_threshold,
            containments=containments,
            autonomy_level=level,
            autonomy_lowered=demoted,
            seconds=elapsed,
        )
    )
    return True


async def _record(
    services: Services, agent_id: str, owner_id: str, trigger: str, count: float
) -> tuple[int, int, bool]:
    """The ledger's account of the containment, and the demotion if it is a repeat.

    Returns (autonomy level now, containments so far, whether the level was lowered).
    """
    settings = services.settings
    now = services.now()

    def account(history: History) -> Account:
        level, earlier = history.autonomy_level, history.earlier
        entries: list[Entry] = []
        lowered: int | None = None
        if earlier >= 1 and level > 0:
            lowered = level - 1
            entries.append(
                (
                    "autonomy_changed",
                    2,
                    now,
                    {
                        "agent_id": agent_id,
                        "owner_id": owner_id,
                        "previous_level": level,
                        "level": lowered,
                        "actor": ACTOR,
                        "reason": (
                            f"contained {earlier + 1} times within {settings.containment_memory} s"
                        ),
                    },
                )
            )
        entries.append(
            (
                "agent_contained",
                1,
                now,
                {
                    "agent_id": agent_id,
                    "owner_id": owner_id,
                    "actor": ACTOR,
                    "violations": round(count),
                    "window": settings.containment_window,
                    "threshold": settings.containment_threshold,
                    "trigger": trigger,
                    "containments": earlier + 1,
                    "autonomy_level": level if lowered is None else lowered,
                },
            )
        )
        return Account(lowered, entries)

    recorded = await services.containment_store.record(
        agent_id, since=now - settings.containment_memory, now=now, decide=account
    )
    if recorded is None:
        raise NotRecorded("the agent is gone")
    history, written = recorded
    lowered = written.autonomy_level
    level = history.autonomy_level if lowered is None else lowered
    return level, history.earlier + 1, lowered is not None
