"""The retry policy: Retry-After in both forms (RFC 9110 §10.2.3), bounds, refusals final."""

from __future__ import annotations

import email.utils

import pytest

from authority.sdk.retry import NO_RETRIES, RetryPolicy, exponential, parse_retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        (email.utils.formatdate(NOW + 12, usegmt=True), 12.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),  # a date past: now
        ("-3", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def policy(**overrides: object) -> RetryPolicy:
    values: dict[str, object] = {"jitter": lambda: 1.0}
    values.update(overrides)
    return RetryPolicy(**values)  # type: ignore[arg-type]


def delay(p: RetryPolicy, status: int | None, *, attempt: int = 1, waited: float = 0.0,
          retry_after: str | None = None) -> float | None:  # fmt: skip
    headers = {} if retry_after is None else {"retry-after": retry_after}
    return p.delay(attempt=attempt, waited=waited, status=status, headers=headers, now=NOW)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 500, 502])
def test_a_refusal_or_an_unknown_outcome_is_never_retried(status: int) -> None:
    assert delay(policy(), status) is None


def test_503_and_429_are_retried_with_what_retry_after_asks() -> None:
    assert delay(policy(), 503, retry_after="3") == 3.0
    assert delay(policy(), 429, retry_after="2") == 2.0


def test_a_429_without_retry_after_is_not_retried() -> None:
    """The authority leaves it out when waiting cannot help (a full approval queue)."""
    assert delay(policy(), 429) is None
    assert delay(policy(), 503) == 0.5


def test_without_retry_after_the_backoff_doubles_up_to_its_ceiling() -> None:
    p = policy(base_delay=0.5, max_delay=3.0, max_attempts=10, max_total_delay=100)
    assert [delay(p, 503, attempt=n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_spreads_the_wait_between_half_and_all_of_it() -> None:
    assert exponential(2.0, 10.0, 2, lambda: 0.0) == 2.0
    assert exponential(2.0, 10.0, 2, lambda: 1.0) == 4.0


def test_attempts_are_bounded() -> None:
    p = policy(max_attempts=3)
    assert delay(p, 503, attempt=2) is not None
    assert delay(p, 503, attempt=3) is None
    assert delay(NO_RETRIES, 503) is None


def test_total_waiting_is_bounded() -> None:
    p = policy(max_total_delay=5.0)
    assert delay(p, 503, waited=2.0, retry_after="3") == 3.0
    assert delay(p, 503, waited=2.5, retry_after="3") is None


def test_a_retry_after_beyond_max_delay_is_not_shortened_but_raised() -> None:
    """Coming back before the authority asked would only be refused again."""
    assert delay(policy(max_delay=10.0), 503, retry_after="11") is None


def test_connection_failures_are_retried_only_when_allowed() -> None:
    assert delay(policy(), None) == 0.5
    assert delay(policy(retry_connect_errors=False), None) is None


def test_a_policy_retries_at_least_zero_times() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)
