"""Automatic containment of an agent that keeps deviating from its baseline.

Each call the agent's baseline sent to its owner (``authority.behaviour``: a tool never
used before, a burst far above its rate) counts as one violation, with the trigger
``behaviour_deviation``, in the same rolling window as denied exchanges, tokens sent
astray and blocked calls (``authority.containment``), towards the same quarantine. A
step-up is made only for an authenticated agent whose attestation the approval request
spent, so each one is the agent's own and counts once (its approval id).

As for every violation, hot state that cannot be reached means "not counted", with a
log line: the approval request is already committed, and the answer stands.
"""

from __future__ import annotations

import logging
from typing import Final

from authority import containment, metrics
from authority.context import Services
from authority.domain_events import ApprovalRequested
from authority.storage.hot import HotStateUnavailable

log = logging.getLogger("authority.containment")

#: The trigger of a deviation, in the ledger's ``agent_contained`` entry.
BEHAVIOUR_DEVIATION: Final = "behaviour_deviation"


async def on_step_up(services: Services, event: ApprovalRequested) -> None:
    settings = services.settings
    if settings.containment_threshold <= 0:
        return
    started = metrics.request_started()
    try:
        if not await services.hot.claim(
            f"contain:deviation:{event.approval_id}", 2 * settings.containment_window
        ):
            return
        await containment.count(
            services, event.agent_id, event.owner_id, BEHAVIOUR_DEVIATION, started
        )
    except HotStateUnavailable as exc:
        log.warning("containment: deviation of %s not counted (%s)", event.agent_id, exc)
