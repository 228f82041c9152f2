"""Client-side pieces: the agent SDK and the resource-server middleware.

Importable with only ``joserfc``, ``cryptography`` and ``httpx`` installed (the base
dependencies of the ``authority`` package); nothing here imports the server.
"""

from authority.sdk.agent import AgentClient, ApprovalPending, AuthorityClientError, ToolCallAuth

__all__ = ["AgentClient", "ApprovalPending", "AuthorityClientError", "ToolCallAuth"]
