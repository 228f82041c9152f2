"""What verifying a workload token can end in, besides a ``WorkloadIdentity``."""

from __future__ import annotations


class WorkloadRejected(Exception):
    """The token is not a valid workload token of this domain: the caller refuses it
    (``invalid_grant`` or ``invalid_client``). ``reason`` is a stable code for the ledger
    and the error description; it never quotes the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IssuerUnavailable(Exception):
    """The domain's keys could not be had in time (its issuer is down, slow or answers
    nonsense): the caller answers 503 ``temporarily_unavailable`` for this domain only,
    never a token. ``reason`` is a stable code for the server log."""

    def __init__(self, domain_id: str, reason: str) -> None:
        super().__init__(f"{domain_id}: {reason}")
        self.domain_id = domain_id
        self.reason = reason
