"""Automatic containment of an agent whose calls a gateway blocks (``CallBlocked``).

A call the gateway's command rules block (a shell command, a destructive query) was
made with one of the agent's genuine tokens, issued for that gateway: the submission
checked it (``recordings.submit``). It counts as a violation of the agent, with the
trigger ``command_blocked``, in the same rolling window as denied exchanges and tokens
sent astray (``authority.containment``), towards the same quarantine.

Each token counts once, however many blocked calls are recorded under it (a retried
call, a gateway resubmitting): an agent's count rises with the distinct calls it was
given tokens for, not with the gateway's retries. The trust this adds: a gateway is
believed when it says it blocked a call. It can only say so of tokens issued for it,
each once.

As for every violation, hot state that cannot be reached means "not counted", with a
log line: the record is already committed, and the gateway's answer stands.
"""

from __future__ import annotations

import logging
from typing import Final

from authority import containment, metrics
from authority.context import Services
from authority.domain_events import CallBlocked
from authority.storage.hot import HotStateUnavailable

log = logging.getLogger("authority.containment")

#: The trigger of a blocked call, in the ledger's ``agent_contained`` entry.
COMMAND_BLOCKED: Final = "command_blocked"


async def on_call_blocked(services: Services, event: CallBlocked) -> None:
    settings = services.settings
    if settings.containment_threshold <= 0:
        return
    started = metrics.request_started()
    try:
        # Once per token; the mark outlives the two buckets the rolling count reads.
        if not await services.hot.claim(
            f"contain:blocked:{event.jti}", 2 * settings.containment_window
        ):
            return
        log.info(
            "call %s of agent %s blocked by %s (rule %s)",
            event.call_id,
            event.agent_id,
            event.gateway,
            event.rule,
        )
        await containment.count(services, event.agent_id, event.owner_id, COMMAND_BLOCKED, started)
    except HotStateUnavailable as exc:
        log.warning("containment: blocked call of %s not counted (%s)", event.agent_id, exc)
