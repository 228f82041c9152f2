"""The upstreams of bench/gateway.py: a small HTTP API and an MCP server (the ``mcp``
package's MCPServer, stateless JSON answers), each served by its own uvicorn."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def _issue(request: Request) -> JSONResponse:
    org, repo = request.path_params["org"], request.path_params["repo"]
    return JSONResponse({"issue": f"{org}/{repo}#1", "state": "open", "labels": ["bug"]})


http_app = Starlette(routes=[Route("/repos/{org}/{repo}/issues/1", _issue, methods=["GET"])])

_server = MCPServer("bench", log_level="WARNING")


@_server.tool()
def create_issue(repo: str, title: str) -> str:
    """Open an issue."""
    return f"created {repo}: {title}"


mcp_app = _server.streamable_http_app(
    streamable_http_path="/mcp", json_response=True, stateless_http=True
)
