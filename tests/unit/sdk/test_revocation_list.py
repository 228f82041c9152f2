"""The rules a locally verifying resource server applies to revocation events."""

from __future__ import annotations

from authority.sdk.revocations import CLOCK_LEEWAY, FeedFollower, RevocationList
from authority.sdk.verifier import VerifiedToken

NOW = 1_800_000_000


def token(**overrides: object) -> VerifiedToken:
    values: dict[str, object] = {
        "raw": "t",
        "claims": {},
        "jti": "at_1",
        "owner_id": "own_1",
        "agent_id": "agt_1",
        "delegation_id": "dlg_1",
        "issued_at": NOW,
        "expires_at": NOW + 5,
        "tool": "t",
        "resource": "r",
        "action": "a",
        "dpop_jkt": None,
    }
    values.update(overrides)
    return VerifiedToken(**values)  # type: ignore[arg-type]


def test_token_event_revokes_that_jti_only() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "token", "jti": "at_1", "time": NOW, "expires_at": NOW + 60}, NOW)
    assert revoked.revokes(token())
    assert not revoked.revokes(token(jti="at_2"))


def test_delegation_event_revokes_every_token_under_it() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "delegation", "delegation_id": "dlg_1", "time": NOW}, NOW)
    assert revoked.revokes(token(jti="at_9", issued_at=NOW + 100))
    assert not revoked.revokes(token(delegation_id="dlg_2"))


def test_agent_event_revokes_tokens_issued_until_then() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "agent", "agent_id": "agt_1", "time": NOW}, NOW)
    assert revoked.revokes(token(issued_at=NOW))
    assert revoked.revokes(token(issued_at=NOW - 3))
    # Within the instances' clock leeway counts as before; well after (a release) does not.
    assert revoked.revokes(token(issued_at=NOW + CLOCK_LEEWAY))
    assert not revoked.revokes(token(issued_at=NOW + CLOCK_LEEWAY + 1))
    assert not revoked.revokes(token(agent_id="agt_2"))


def test_owner_event_revokes_every_agent_of_the_owner() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "owner", "owner_id": "own_1", "time": NOW}, NOW)
    assert revoked.revokes(token(agent_id="agt_7"))
    assert not revoked.revokes(token(owner_id="own_2"))


def test_expired_events_are_forgotten() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "token", "jti": "at_1", "time": NOW, "expires_at": NOW + 5}, NOW)
    revoked.forget_expired(NOW + 6)
    assert not revoked.tokens


def test_feed_is_unhealthy_until_heard_and_after_silence() -> None:
    import httpx

    now = [float(NOW)]
    feed = FeedFollower("http://x/feed", httpx.AsyncClient(), max_silence=30, clock=lambda: now[0])
    assert not feed.healthy
    feed._heard()
    assert feed.healthy
    now[0] += 31
    assert not feed.healthy
