"""The values of revocation events, shared by the flows that record them and the feed.

What the kinds mean, and who hears which event, is ``authority.revocations.events``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["token", "delegation", "agent", "owner", "tool"]


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    id: int
    kind: str
    time: int
    expires_at: int | None
    jti: str | None = None
    delegation_id: str | None = None
    agent_id: str | None = None
    owner_id: str | None = None
    tool: str | None = None
    #: The ids of the resource servers the event concerns (see ``revocations.events``);
    #: None for every server. Never sent: it is how the feed filters, not part of the event.
    servers: frozenset[str] | None = None

    def concerns(self, server_id: str) -> bool:
        return self.servers is None or server_id in self.servers

    def as_json(self) -> dict[str, Any]:
        """The event as the feed sends it: absent members are omitted, not null."""
        members = {
            "id": self.id,
            "kind": self.kind,
            "time": self.time,
            "expires_at": self.expires_at,
            "jti": self.jti,
            "delegation_id": self.delegation_id,
            "agent_id": self.agent_id,
            "owner_id": self.owner_id,
            "tool": self.tool,
        }
        return {name: value for name, value in members.items() if value is not None}
