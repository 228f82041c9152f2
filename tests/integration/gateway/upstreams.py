"""The tools behind the gateway in these tests, as their owners would write them: an MCP
server built with the official ``mcp`` package (``MCPServer``, Streamable HTTP) and a
plain HTTP API, each refusing any request without its own upstream credential, each
recording every request that reaches it (so a test can assert that nothing did).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MCP_CREDENTIAL = "upstream-mcp-credential-0123456789"
API_KEY = "upstream-api-key-9876543210"
#: What the masking fake hides.
SECRET_MARK = "SECRET-"


@dataclass
class Arrival:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Seen:
    """Every request that reached an upstream."""

    arrivals: list[Arrival] = field(default_factory=list)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            chunks: list[Message] = []
            body = b""
            while True:
                message = await receive()
                chunks.append(message)
                body += message.get("body", b"")
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            raw = [(k.decode().lower(), v.decode()) for k, v in scope["headers"]]
            self.arrivals.append(Arrival(scope["method"], scope["path"], dict(raw), body, raw))
            replay = iter(chunks)

            async def again() -> Message:
                try:
                    return next(replay)
                except StopIteration:
                    return await receive()

            await app(scope, again, send)

        return recorded

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """The JSON-RPC messages that arrived (optionally of one method)."""
        found = []
        for arrival in self.arrivals:
            if arrival.method != "POST" or not arrival.body:
                continue
            message = json.loads(arrival.body)
            if method is None or message.get("method") == method:
                found.append(message)
        return found


def _requires(header: str, value: str, app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            if headers.get(header) != value:
                await Response(status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def mcp_server() -> MCPServer:
    server = MCPServer("tracker")

    @server.tool()
    def create_issue(repo: str, title: str) -> str:
        """Open an issue."""
        return f"created {repo}: {title}"

    @server.tool()
    def delete_repo(repo: str) -> str:
        """Delete a repository."""
        return f"deleted {repo}"

    @server.tool()
    def read_config(name: str) -> str:
        """A configuration value (with a secret in it)."""
        return f"{name} = {SECRET_MARK}hunter2"

    @server.tool()
    async def run_job(steps: int, ctx: Context) -> str:
        """A long job that reports progress on an event stream."""
        for step in range(steps):
            await ctx.report_progress(step, steps)
            await asyncio.sleep(0.02)
        return f"ran {steps} steps"

    @server.tool()
    def shell(command: str) -> str:
        """Run a command."""
        return f"ran {command}"

    @server.tool()
    def echo_headers(ctx: Context) -> str:
        """The request headers this server received (a careless tool)."""
        request = ctx.request_context.request
        headers = dict(request.headers) if request is not None else {}
        return json.dumps(headers)

    @server.tool()
    def deploy(env: str) -> str:
        """Deploy (the owner approves each call)."""
        return f"deployed to {env}"

    @server.tool()
    def unmapped(x: int) -> int:
        """A tool the gateway declares nothing for."""
        return x

    return server


def mcp_app(seen: Seen) -> ASGIApp:
    app = mcp_server().streamable_http_app(streamable_http_path="/mcp")
    return seen.wrap(_requires("authorization", f"Bearer {MCP_CREDENTIAL}", app))


async def _create(request: Request) -> JSONResponse:
    body = await request.json()
    org, repo = request.path_params["org"], request.path_params["repo"]
    return JSONResponse({"created": f"{org}/{repo}", "title": body.get("title")}, status_code=201)


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"headers": dict(request.headers), "note": f"{SECRET_MARK}abc"})


async def _stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"chunk {i}; ".encode()
            await asyncio.sleep(0.01)
        # The credential split across two chunks: still stripped.
        yield API_KEY[:7].encode()
        yield API_KEY[7:].encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def _upload(request: Request) -> JSONResponse:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return JSONResponse({"received": size})


async def _run(request: Request) -> JSONResponse:
    return JSONResponse({"ran": request.path_params["command"]})


async def _admin(request: Request) -> JSONResponse:
    return JSONResponse({"admin": True})


def http_app(seen: Seen) -> ASGIApp:
    app = Starlette(
        routes=[
            Route("/repos/{org}/{repo}/issues", _create, methods=["POST"]),
            Route("/echo", _echo, methods=["GET"]),
            Route("/stream", _stream, methods=["GET"]),
            Route("/upload", _upload, methods=["PUT"]),
            Route("/run/{command}", _run, methods=["POST"]),
            Route("/admin", _admin, methods=["GET"]),
        ]
    )
    return seen.wrap(_requires("x-api-key", API_KEY, app))
