"""The gateway end to end over loopback HTTP: the authority (on both backends) behind a TCP
proxy that can cut or stall it, two upstreams (an ``mcp`` MCPServer and an HTTP API), the
gateway in front of them under uvicorn, and an agent with the SDK."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import jwt
import pytest
from joserfc.jwk import OKPKey
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from authority.clock import FrozenClock
from authority.gateway.app import Gateway
from authority.gateway.calls import Seams
from authority.gateway.config import (
    Credential,
    GatewaySettings,
    HttpRoute,
    McpCall,
    SecretRef,
    Upstream,
)
from authority.gateway.wiring import build_gateway
from authority.sdk.agent import AgentClient
from authority.sdk.mcp import GatewayAuth
from authority.settings import Settings
from tests.conftest import BACKENDS
from tests.integration.gateway.fakes import FakeCommands, FakeMasking, FakeRecorder
from tests.integration.gateway.upstreams import (
    API_KEY,
    MCP_CREDENTIAL,
    Seen,
    http_app,
    mcp_app,
)
from tests.revocation_support import Proxy, Server, add_server, free_port, listening, serving
from tests.support import World


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Both backends here (the integration tier's default is PostgreSQL only)."""
    return str(request.param)


class LiveClock(FrozenClock):
    """Real time (tokens cross real processes' clocks), still advanceable."""

    def __init__(self) -> None:
        super().__init__(0.0)

    def now(self) -> float:
        return time.time() + self._now


@pytest.fixture
def clock() -> FrozenClock:
    return LiveClock()


@pytest.fixture
async def authority_proxy() -> AsyncIterator[Proxy]:
    proxy = Proxy("127.0.0.1", free_port())
    await proxy.up()
    try:
        yield proxy
    finally:
        await proxy.down()


@pytest.fixture
def settings(settings_factory: Any, authority_proxy: Proxy) -> Settings:
    issuer = f"http://127.0.0.1:{authority_proxy.port}"
    result: Settings = settings_factory(issuer=issuer, approval_poll_interval=1)
    return result


MCP_TOOLS = {
    "create_issue": McpCall(tool="tracker.issues.create", action="create", resource="{repo}"),
    "delete_repo": McpCall(tool="tracker.repos.delete", action="delete", resource="{repo}"),
    "read_config": McpCall(tool="tracker.config.read", action="read", resource="{name}"),
    "run_job": McpCall(tool="tracker.jobs.run", action="run", resource="jobs"),
    "shell": McpCall(tool="tracker.shell", action="exec", resource="host"),
    "echo_headers": McpCall(tool="tracker.debug", action="read", resource="headers"),
    "deploy": McpCall(tool="tracker.deploy", action="run", resource="{env}"),
}
HTTP_ROUTES = (
    HttpRoute(
        method="POST",
        path="/repos/{org}/{repo}/issues",
        tool="api.issues.create",
        action="create",
        resource="{org}/{repo}",
        bind_arguments=True,
    ),
    HttpRoute(method="GET", path="/echo", tool="api.echo", action="read", resource="echo"),
    HttpRoute(method="GET", path="/stream", tool="api.stream", action="read", resource="stream"),
    HttpRoute(method="PUT", path="/upload", tool="api.upload", action="write", resource="files"),
    HttpRoute(
        method="POST", path="/run/{command}", tool="api.run", action="run", resource="{command}"
    ),
    HttpRoute(method="GET", path="/admin", tool="api.admin", action="read", resource="admin"),
)
#: (tool, actions) on each upstream; the delegation covers all but the last of each.
MCP_REGISTRY = [
    ("mcp.session.tracker", ["connect"]),
    ("tracker.issues.create", ["create"]),
    ("tracker.config.read", ["read"]),
    ("tracker.jobs.run", ["run"]),
    ("tracker.shell", ["exec"]),
    ("tracker.debug", ["read"]),
    ("tracker.deploy", ["run"]),
    ("tracker.repos.delete", ["delete"]),
]
#: Tools whose every call the owner approves.
APPROVED = frozenset({"tracker.deploy"})
HTTP_REGISTRY = [
    ("api.issues.create", ["create"]),
    ("api.echo", ["read"]),
    ("api.stream", ["read"]),
    ("api.upload", ["write"]),
    ("api.run", ["run"]),
    ("api.admin", ["read"]),
]


@dataclass
class Stack:
    world: World
    issuer: str
    proxy: Proxy
    # Held from the start: the gateway's URL is in its settings before it serves.
    gateway_socket: socket.socket | None = field(default_factory=listening)
    gateway_port: int = 0
    mcp_seen: Seen = field(default_factory=Seen)
    api_seen: Seen = field(default_factory=Seen)
    recorder: FakeRecorder = field(default_factory=FakeRecorder)
    commands: FakeCommands = field(default_factory=FakeCommands)
    mcp_server: Server | None = None
    api_server: Server | None = None
    mcp_upstream_url: str = ""
    api_upstream_url: str = ""
    agent: AgentClient | None = None
    app: Gateway | None = None

    def __post_init__(self) -> None:
        assert self.gateway_socket is not None
        self.gateway_port = self.gateway_socket.getsockname()[1]

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def mcp_url(self) -> str:
        return self.public_url + "/u/tracker"

    @property
    def api_url(self) -> str:
        return self.public_url + "/u/api"

    async def register(self) -> None:
        world = self.world
        self.mcp_server = await add_server(world, self.mcp_url)
        self.api_server = await add_server(world, self.api_url)
        for server, registry in ((self.mcp_server, MCP_REGISTRY), (self.api_server, HTTP_REGISTRY)):
            for name, actions in registry:
                await world.post(
                    "/v1/tools",
                    world.admin,
                    {
                        "name": name,
                        "resource_server_id": server.id,
                        "actions": actions,
                        "read_actions": actions if actions in (["read"], ["connect"]) else [],
                        "risk_tier": 0 if actions == ["connect"] else 1,
                        "approval_required": name in APPROVED,
                    },
                )
        await self.delegate()

    async def delegate(self) -> None:
        covered = [*MCP_REGISTRY[:-1], *HTTP_REGISTRY[:-1]]
        await self.world.delegate(
            scope=[{"tool": t, "resources": ["**"], "actions": a} for t, a in covered],
            intent="triage the tracker",
        )
        if self.agent is not None:
            await self.agent.aclose()
        self.agent = agent_client(self.world, self.issuer)

    def settings(self, **overrides: Any) -> GatewaySettings:
        assert self.mcp_server is not None and self.api_server is not None
        assert self.mcp_server.secret is not None and self.api_server.secret is not None
        values: dict[str, Any] = {
            "issuer": self.issuer,
            "public_url": self.public_url,
            "port": self.gateway_port,
            "upstreams": [
                Upstream(
                    name="tracker",
                    kind="mcp",
                    url=self.mcp_upstream_url + "/mcp",
                    client_id=self.mcp_server.id,
                    client_secret=SecretRef(value=self.mcp_server.secret),
                    credential=Credential(type="bearer", secret=SecretRef(value=MCP_CREDENTIAL)),
                    tools=MCP_TOOLS,
                ),
                Upstream(
                    name="api",
                    kind="http",
                    url=self.api_upstream_url,
                    client_id=self.api_server.id,
                    client_secret=SecretRef(value=self.api_server.secret),
                    credential=Credential(
                        type="header", name="X-Api-Key", secret=SecretRef(value=API_KEY)
                    ),
                    routes=HTTP_ROUTES,
                ),
            ],
            **overrides,
        }
        return GatewaySettings(**values)

    @contextlib.asynccontextmanager
    async def gateway(
        self, *, wait_ready: bool = True, seams: Seams | None = None, **overrides: Any
    ) -> AsyncIterator[Gateway]:
        seams = seams or Seams(
            recorder=self.recorder, masking=FakeMasking(), commands=self.commands
        )
        app = build_gateway(self.settings(**overrides), seams=seams)
        try:
            sock, self.gateway_socket = self.gateway_socket, None  # uvicorn closes it
            async with serving(app, port=self.gateway_port, sock=sock, lifespan="on"):
                if wait_ready:
                    for name in ("tracker", "api"):
                        feed = app.upstream(name).gate.feed
                        assert feed is not None
                        await asyncio.wait_for(feed.wait_ready(), 10)
                self.app = app
                yield app
        finally:
            await app.stop()  # uvicorn's forced exit skips the lifespan's shutdown

    @contextlib.asynccontextmanager
    async def mcp(
        self,
        *,
        mode: Any = "auto",
        agent: AgentClient | None = None,
        auth: GatewayAuth | None = None,
    ) -> AsyncIterator[Client]:
        assert self.agent is not None
        auth = auth or GatewayAuth(agent or self.agent)
        try:
            async with (
                httpx2.AsyncClient(auth=auth, timeout=30) as http,
                Client(streamable_http_client(self.mcp_url, http_client=http), mode=mode) as client,
            ):
                yield client
        finally:
            await auth.aclose()

    def upstream_tokens(self) -> list[str]:
        """Every Authorization value the upstreams received."""
        found = [a.headers.get("authorization", "") for a in self.mcp_seen.arrivals]
        found += [a.headers.get("authorization", "") for a in self.api_seen.arrivals]
        return found


def agent_client(world: World, issuer: str, *, dpop: bool = False) -> AgentClient:
    key = OKPKey.import_key(
        {
            **world.agent_key.public_jwk(),
            "d": jwt.algorithms.OKPAlgorithm.to_jwk(world.agent_key.private, as_dict=True)["d"],
        }
    )
    return AgentClient(
        issuer,
        world.agent_id,
        key,
        world.credential,
        dpop_key=OKPKey.generate_key("Ed25519") if dpop else None,
    )


@pytest.fixture
async def stack(
    world: World, app: Starlette, authority_proxy: Proxy, settings: Settings
) -> AsyncIterator[Stack]:
    stack = Stack(world, settings.issuer, authority_proxy)
    async with (
        serving(app) as authority_url,
        serving(mcp_app(stack.mcp_seen), lifespan="on") as mcp_url,
        serving(http_app(stack.api_seen)) as api_url,
    ):
        authority_proxy.target_port = int(authority_url.rsplit(":", 1)[1])
        stack.mcp_upstream_url, stack.api_upstream_url = mcp_url, api_url
        await stack.register()
        try:
            yield stack
        finally:
            if stack.agent is not None:
                await stack.agent.aclose()
            if stack.gateway_socket is not None:
                stack.gateway_socket.close()


@pytest.fixture
async def gateway(stack: Stack) -> AsyncIterator[Gateway]:
    async with stack.gateway() as app:
        yield app


def call_id() -> str:
    return uuid.uuid4().hex
