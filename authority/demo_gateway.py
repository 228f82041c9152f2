"""``authority demo --gateway``: an MCP server that embeds nothing of ours, behind the gateway.

Everything runs in this process on loopback ports, on the embedded default: the authority,
an MCP server built with the ``mcp`` package (Streamable HTTP, which accepts only the
gateway's own credential), and the gateway in front of it. An admin registers the
gateway's upstream and its tools, an owner delegates one tool on one repository, and the
agent, with the official MCP client and the SDK's ``GatewayAuth``, lists the tools (it is
shown only what it may call), makes a call inside the delegation and reads a customer
whose card number the gateway masks, is refused a call on another repository, and cannot
replay the token of its call with other arguments. The gateway records every call at the
authority, and an auditor reads the recording of the first call back.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc.jwk import OKPKey

from authority.app import create_app
from authority.context import Services
from authority.demo import _free_port, _Steps, cmd_demo, serve
from authority.gateway.config import Credential, GatewaySettings, McpCall, SecretRef, Upstream
from authority.gateway.wiring import build_gateway
from authority.management.api_keys import bootstrap, issue_operator_key
from authority.sdk import AgentClient, AuthorityClientError
from authority.settings import Settings

TOOL = "tracker.issues.create"
READ = "tracker.customers.read"
SESSION = "mcp.session.tracker"
UPSTREAM_CREDENTIAL = "demo-upstream-credential-0123456789"

Printer = Callable[[str], None]


@dataclass
class GatewayDemoResult:
    """What happened, for the end-to-end test to check."""

    listed: list[str] = field(default_factory=list)
    called: str | None = None
    masked: str | None = None
    refused_outside: str | None = None
    replayed_status: int | None = None
    recorded: dict[str, Any] = field(default_factory=dict)


def tracker_app() -> Any:
    """The MCP server: two tools, and no idea of agents, tokens or delegations."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("tracker", log_level="WARNING")

    @server.tool()
    def create_issue(repo: str, title: str) -> str:
        """Open an issue in a repository."""
        return f"opened {repo}#{len(title)}: {title}"

    @server.tool()
    def delete_repo(repo: str) -> str:
        """Delete a repository."""
        return f"deleted {repo}"

    @server.tool()
    def customer(name: str) -> str:
        """A customer's record, card number and all."""
        return f"{name}: card 4111 1111 1111 1111, plan gold"

    inner = server.streamable_http_app(streamable_http_path="/mcp")

    async def only_the_gateway(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {UPSTREAM_CREDENTIAL}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await inner(scope, receive, send)

    return only_the_gateway


async def run_gateway_demo(
    print_: Printer = print, *, data_dir: Path | None = None
) -> GatewayDemoResult:
    import httpx2
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    from authority.sdk.mcp import GatewayAuth

    result = GatewayDemoResult()
    step = _Steps(print_)
    with tempfile.TemporaryDirectory(prefix="authority-demo-") as tmp:
        folder = data_dir or Path(tmp)
        port, mcp_port, gw_port = _free_port(), _free_port(), _free_port()
        issuer, gateway = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{gw_port}"
        audience = gateway + "/u/tracker"
        settings = Settings(
            issuer=issuer, port=port, data_dir=folder, auto_migrate=True, log_level="warning"
        )
        app = create_app(settings)
        services: Services = app.state.services
        async with serve(app, port), httpx.AsyncClient(base_url=issuer, timeout=10) as http:
            admin = (await bootstrap(services)).secret

            async def call(path: str, key: str, body: Any) -> Any:
                response = await http.post(
                    path, json=body, headers={"Authorization": f"Bearer {key}"}
                )
                response.raise_for_status()
                return response.json()

            server = await call(
                "/v1/resource-servers", admin, {"name": "tracker via gateway", "audience": audience}
            )
            for name, action in ((SESSION, "connect"), (TOOL, "create"), (READ, "read")):
                await call(
                    "/v1/tools",
                    admin,
                    {
                        "name": name,
                        "resource_server_id": server["id"],
                        "actions": [action],
                        "read_actions": [action] if action == "connect" else [],
                        "risk_tier": 1,
                    },
                )
            step(
                f"Admin registers the MCP server behind the gateway as {audience} "
                f"(its tools {TOOL}, {READ} and the session tool {SESSION})."
            )
            owner = await call("/v1/owners", admin, {"name": "Ada"})
            owner_key = (await call(f"/v1/owners/{owner['id']}/api-keys", admin, {}))["api_key"]
            key = OKPKey.generate_key("Ed25519", parameters={"kid": "triager-1"})
            agent = await call(
                "/v1/agents",
                owner_key,
                {
                    "name": "triager",
                    "autonomy_level": 1,
                    "jwks": {"keys": [key.as_dict(private=False)]},
                },
            )
            delegation = await call(
                "/v1/delegations",
                owner_key,
                {
                    "agent_id": agent["id"],
                    "intent": "file bugs in acme/web",
                    "scope": [
                        {"tool": SESSION, "resources": ["tracker"], "actions": ["connect"]},
                        {"tool": TOOL, "resources": ["acme/web"], "actions": ["create"]},
                        {"tool": READ, "resources": ["customers/*"], "actions": ["read"]},
                    ],
                    "expires_in": 3600,
                },
            )
            step(f'Owner Ada delegates to agent {agent["id"]}: "{delegation["intent"]}".')

            gateway_settings = GatewaySettings(
                issuer=issuer,
                public_url=gateway,
                port=gw_port,
                upstreams=(
                    Upstream(
                        name="tracker",
                        kind="mcp",
                        url=f"http://127.0.0.1:{mcp_port}/mcp",
                        client_id=server["id"],
                        client_secret=SecretRef(value=server["client_secret"]),
                        credential=Credential(
                            type="bearer", secret=SecretRef(value=UPSTREAM_CREDENTIAL)
                        ),
                        tools={
                            "create_issue": McpCall(tool=TOOL, action="create", resource="{repo}"),
                            "delete_repo": McpCall(
                                tool="tracker.repos.delete", action="delete", resource="{repo}"
                            ),
                            "customer": McpCall(
                                tool=READ, action="read", resource="customers/{name}"
                            ),
                        },
                    ),
                ),
                # The configuration's tables choose the seams (gateway.wiring.build_seams):
                # card numbers masked in every answer, every call recorded at the authority.
                masking={"default": {"detectors": ["card"]}},
                recording={},
            )
            gateway_app = build_gateway(gateway_settings)
            async with serve(tracker_app(), mcp_port), serve(gateway_app, gw_port):
                feed = gateway_app.upstream("tracker").gate.feed
                if feed is not None:
                    await asyncio.wait_for(feed.wait_ready(), 10)
                step(
                    f"The MCP server runs on 127.0.0.1:{mcp_port} and takes only the gateway's "
                    f"credential; the gateway serves it at {audience}."
                )
                agent_client = AgentClient(issuer, agent["id"], key, delegation["credential"])
                auth = GatewayAuth(agent_client)
                async with (
                    httpx2.AsyncClient(auth=auth, timeout=30) as mcp_http,
                    Client(streamable_http_client(audience, http_client=mcp_http)) as client,
                ):
                    result.listed = sorted(t.name for t in (await client.list_tools()).tools)
                    step(f"Agent lists the tools through the gateway: {', '.join(result.listed)}.")
                    arguments = {"repo": "acme/web", "title": "Login button does nothing"}
                    answer = await client.call_tool("create_issue", arguments)
                    result.called = str(getattr(answer.content[0], "text", ""))
                    step(
                        f"Agent calls create_issue on acme/web with a per-call token: "
                        f"{result.called}"
                    )
                    seen = await client.call_tool("customer", {"name": "Grace"})
                    result.masked = str(getattr(seen.content[0], "text", ""))
                    step(f"Agent reads a customer; the gateway masks the card: {result.masked}")
                try:
                    await agent_client.token(
                        TOOL,
                        "acme/infra",
                        "create",
                        audience=audience,
                        arguments={"repo": "acme/infra", "title": "x"},
                    )
                except AuthorityClientError as exc:
                    result.refused_outside = exc.error
                    step(f"Agent asks to open an issue in acme/infra: refused ({exc.error}).")
                token = await agent_client.token(
                    TOOL, "acme/web", "create", audience=audience, arguments=arguments
                )
                changed = {**arguments, "title": "Close every other issue"}
                replay = await _raw_call(audience, token.value, "create_issue", changed)
                result.replayed_status = replay.status_code
                step(
                    f"The token of that call, sent with another title: {replay.status_code} "
                    f"({replay.json()['error']['message']})"
                )
                await auth.aclose()
                await agent_client.aclose()
                recorder = gateway_app.recorder
                flush = getattr(recorder, "flush", None)
                if callable(flush):
                    await asyncio.wait_for(flush(), 10)
            auditor = (await issue_operator_key(services, "auditor", "demo auditor")).secret
            result.recorded = await _recording(http, auditor, _jti(token.value))
            step(
                "Auditor reads the gateway's recording of that replay: "
                f"{result.recorded.get('outcome')}, {result.recorded.get('tool')} on "
                f"{result.recorded.get('resource')}, HTTP {result.recorded.get('status')}"
            )
    return result


def _jti(token: str) -> str:
    """The ``jti`` of one of our own tokens (read, not verified: we minted it)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


async def _recording(http: httpx.AsyncClient, auditor: str, jti: str) -> dict[str, Any]:
    """The call record of the recording of token ``jti`` (the auditor's API)."""
    response = await http.get(
        "/v1/recordings", params={"jti": jti}, headers={"Authorization": f"Bearer {auditor}"}
    )
    response.raise_for_status()
    items = response.json()["items"]
    if not items:
        return {}
    body = items[0]["entry"]["body"]
    entry = json.loads(body) if isinstance(body, str) else body
    record: dict[str, Any] = entry.get("record", entry)
    return record


async def _raw_call(url: str, token: str, name: str, arguments: dict[str, Any]) -> httpx.Response:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": meta},
    }
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, content=json.dumps(body), headers=headers)


def cmd_demo_either(args: argparse.Namespace) -> int:
    if getattr(args, "gateway", False):
        asyncio.run(run_gateway_demo())
        return 0
    return cmd_demo(args)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``--gateway`` on the ``demo`` command (``authority.demo`` registers it first)."""
    demo = sub.choices["demo"]
    demo.add_argument(
        "--gateway", action="store_true", help="the story of an MCP server behind the gateway"
    )
    demo.set_defaults(func=cmd_demo_either)
