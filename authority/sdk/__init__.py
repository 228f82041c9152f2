"""Client-side pieces: the agent SDK and the resource-server middleware.

Importable with only ``joserfc``, ``cryptography``, ``httpx`` and ``httpx-sse`` installed
(the base dependencies of the ``authority`` package); nothing here imports the server.
"""

from authority.sdk.agent import AgentClient, ToolCallAuth
from authority.sdk.core import AccessToken
from authority.sdk.errors import (
    AccessDenied,
    ApprovalPending,
    AuthorityClientError,
    ExpiredToken,
    InsufficientScope,
    InvalidClient,
    InvalidDPoPProof,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    TemporarilyUnavailable,
    TooManyRequests,
)
from authority.sdk.retry import NO_RETRIES, RetryPolicy
from authority.sdk.sync_agent import SyncAgentClient

__all__ = [
    "NO_RETRIES",
    "AccessDenied",
    "AccessToken",
    "AgentClient",
    "ApprovalPending",
    "AuthorityClientError",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidClient",
    "InvalidDPoPProof",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "RetryPolicy",
    "SyncAgentClient",
    "TemporarilyUnavailable",
    "TooManyRequests",
    "ToolCallAuth",
]
