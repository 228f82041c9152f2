"""When to ask the authority again: HTTP 503 and 429 with ``Retry-After`` (RFC 9110 §10.2.3),
bounded in attempts and in total waiting, with exponential backoff and jitter otherwise.

Only answers that mean "not now" are retried: 503 ``temporarily_unavailable`` (the
authority fails closed when it cannot decide safely) and 429 (a rate limit), and a
connection that could not be opened (the request never left). A refusal (any other 4xx:
``invalid_grant``, ``access_denied``, ``invalid_scope``...) is final, and so is a request
that may have reached the authority without an answer (a read timeout): retrying it could
issue a second token for the same call.

The policy is pure: it says how long to wait, the clients sleep (``authority.sdk.agent``
and the revocation feed, ``authority.sdk.feed``), so tests inject the sleep and never wait.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["NO_RETRIES", "RetryPolicy", "exponential", "parse_retry_after"]

RETRY_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date.

    RFC 9110 §10.2.3: ``Retry-After = HTTP-date / delay-seconds``. A date in the past
    is 0; anything else that is neither (negative, fractional, garbage) is None.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 §5.6.7: an HTTP-date is always GMT; "-0000" means unknown
    return max(0.0, when.timestamp() - now)


def exponential(base: float, ceiling: float, retry: int, jitter: Callable[[], float]) -> float:
    """``base * 2**(retry-1)``, capped at ``ceiling``, times a random factor in [0.5, 1].

    The factor spreads clients that failed together (an authority restarting, a feed
    closing every stream at shutdown) so that they do not all come back at once.
    """
    wait: float = min(ceiling, base * 2.0 ** (max(retry, 1) - 1))
    return wait * (0.5 + 0.5 * jitter())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry "not now" answers.

    ``max_attempts`` counts the first request (1: never retry). Without ``Retry-After``
    a 503 or a connection never opened is retried, the n-th time after
    ``base_delay * 2**(n-1)`` (capped at ``max_delay``) times a
    random factor in [0.5, 1] so that many agents do not come back at once. With one,
    the wait is what it asks for; an answer asking for more than ``max_delay`` is raised
    at once (coming back earlier would only be refused again), and so is one whose wait
    would bring the total beyond ``max_total_delay``.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_total_delay: float = 30.0
    statuses: frozenset[int] = RETRY_STATUSES
    #: Retry a connection that could not be opened (nothing was sent).
    retry_connect_errors: bool = True
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts counts the first request: at least 1")
        if min(self.base_delay, self.max_delay, self.max_total_delay) < 0:
            raise ValueError("delays are not negative")

    def backoff(self, retry: int) -> float:
        """The wait before the ``retry``-th retry (1-based) when no ``Retry-After`` is given."""
        return exponential(self.base_delay, self.max_delay, retry, self.jitter)

    def delay(
        self,
        *,
        attempt: int,
        waited: float,
        status: int | None,
        headers: Mapping[str, str] | None,
        now: float,
    ) -> float | None:
        """Seconds to wait before another attempt, or None to stop and raise.

        ``attempt`` is the number of requests made so far, ``waited`` the seconds already
        slept between them; ``status`` is None for a connection that could not be opened.
        """
        if attempt >= self.max_attempts:
            return None
        if status is None:
            if not self.retry_connect_errors:
                return None
        elif status not in self.statuses:
            return None
        asked = parse_retry_after((headers or {}).get("retry-after"), now)
        if status == 429 and asked is None:
            # "Too many" without a time: nothing gets better by waiting (the authority
            # names one whenever it does, such as a rate window's end).
            return None
        wait = self.backoff(attempt) if asked is None else asked
        if wait > self.max_delay or waited + wait > self.max_total_delay:
            return None
        return wait


#: Fail at the first "not now", as the SDK did before it retried.
NO_RETRIES = RetryPolicy(max_attempts=1)
