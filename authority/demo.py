"""``authority demo``: the whole story on the embedded default, over real HTTP, step by step.

Nothing to start beforehand: the authority (SQLite file and in-process hot state in a
temporary folder) and a sample tool server guarded by the middleware run in this
process on loopback ports. An admin vets a tool, an owner registers an agent and
delegates, the agent calls the tool through the SDK with a fresh token per call, a call
outside the delegation is refused, the owner revokes, the next call is refused, and an
auditor exports the ledger and verifies it offline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from joserfc.jwk import OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from authority.app import create_app
from authority.context import Services
from authority.endpoints import paths
from authority.ledger.cli import verify_sources
from authority.management.api_keys import bootstrap, issue_operator_key
from authority.sdk import AgentClient, AuthorityClientError
from authority.sdk.middleware import AuthorityMiddleware, ToolRoute, token_of
from authority.settings import Settings

TOOL = "github.issues.create"

Printer = Callable[[str], None]


@dataclass
class DemoResult:
    """What happened, for the end-to-end test to check."""

    tool_calls: list[int] = field(default_factory=list)
    refused_outside: str | None = None
    refused_after_revoke: str | None = None
    old_token_after_revoke: int | None = None
    ledger: str | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, port: int) -> AsyncIterator[None]:
    """Run ``app`` with uvicorn on a loopback port for the duration of the block."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server did not start")
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def tool_server(issuer: str, audience: str, client_id: str, client_secret: str) -> ASGIApp:
    """A sample GitHub-like tool: one route, guarded by the resource-server middleware."""

    async def create_issue(request: Request) -> JSONResponse:
        token = token_of(request.state)
        org, repo = request.path_params["org"], request.path_params["repo"]
        body = await request.json()
        return JSONResponse(
            {
                "created": f"{org}/{repo}#{secrets.randbelow(900) + 100}",
                "title": body["title"],
                "by_agent": token.agent_id,
                "for_owner": token.owner_id,
            },
            status_code=201,
        )

    app = Starlette(routes=[Route("/repos/{org}/{repo}/issues", create_issue, methods=["POST"])])
    return AuthorityMiddleware(
        app,
        issuer=issuer,
        audience=audience,
        routes=[
            ToolRoute(
                "POST",
                "/repos/{org}/{repo}/issues",
                tool=TOOL,
                action="create",
                resource="{org}/{repo}",
            )
        ],
        client_id=client_id,
        client_secret=client_secret,
    )


async def run_demo(print_: Printer = print, *, data_dir: Path | None = None) -> DemoResult:
    result = DemoResult()
    with tempfile.TemporaryDirectory(prefix="authority-demo-") as tmp:
        folder = data_dir or Path(tmp)
        port, tool_port = _free_port(), _free_port()
        issuer, audience = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{tool_port}"
        settings = Settings(
            issuer=issuer, port=port, data_dir=folder, auto_migrate=True, log_level="warning"
        )
        app = create_app(settings)
        services: Services = app.state.services
        step = _Steps(print_)
        async with serve(app, port), httpx.AsyncClient(base_url=issuer, timeout=10) as http:
            step(
                f"The authority runs on {issuer} "
                f"(embedded: SQLite in {folder}, hot state in process)."
            )

            admin = (await bootstrap(services)).secret

            async def call(method: str, path: str, key: str, body: Any = None) -> Any:
                response = await http.request(
                    method, path, json=body, headers={"Authorization": f"Bearer {key}"}
                )
                response.raise_for_status()
                return response.json()

            server = await call(
                "POST",
                "/v1/resource-servers",
                admin,
                {"name": "Sample GitHub", "audience": audience},
            )
            await call(
                "POST",
                "/v1/tools",
                admin,
                {
                    "name": TOOL,
                    "resource_server_id": server["id"],
                    "actions": ["create"],
                    "risk_tier": 1,
                },
            )
            step(f"Admin registers the resource server {audience} and vets the tool {TOOL}.")

            owner = await call("POST", "/v1/owners", admin, {"name": "Ada"})
            owner_key = (await call("POST", f"/v1/owners/{owner['id']}/api-keys", admin, {}))[
                "api_key"
            ]
            key = OKPKey.generate_key("Ed25519", parameters={"kid": "triager-1"})
            agent = await call(
                "POST",
                "/v1/agents",
                owner_key,
                {
                    "name": "triager",
                    "autonomy_level": 1,
                    "jwks": {"keys": [key.as_dict(private=False)]},
                },
            )
            delegation = await call(
                "POST",
                "/v1/delegations",
                owner_key,
                {
                    "agent_id": agent["id"],
                    "intent": "triage bugs in acme/web",
                    "scope": [{"tool": TOOL, "resources": ["acme/web"], "actions": ["create"]}],
                    "expires_in": 3600,
                    "max_calls": 10,
                },
            )
            step(
                f"Owner Ada registers agent {agent['id']} with its public key only, at "
                "autonomy level 1 (a new agent starts at 0, where a call of this tool waits "
                "for her approval), and "
                f'delegates: "{delegation["intent"]}" ({TOOL} on acme/web, 10 calls, 1 h).'
            )

            tool_app = tool_server(issuer, audience, server["id"], server["client_secret"])
            async with (
                serve(tool_app, tool_port),
                httpx.AsyncClient(base_url=audience, timeout=10) as tools,
            ):
                agent_client = AgentClient(issuer, agent["id"], key, delegation["credential"])
                auth = agent_client.auth(TOOL, "create", audience=audience, resource="acme/web")
                for title in ("Login button does nothing", "Crash on empty cart"):
                    response = await tools.post(
                        "/repos/acme/web/issues", json={"title": title}, auth=auth
                    )
                    result.tool_calls.append(response.status_code)
                    step(
                        f"Agent calls the tool with a fresh per-call token: "
                        f"{response.status_code} {response.json().get('created', response.text)}"
                    )

                try:
                    await agent_client.token(TOOL, "acme/infra", "create", audience=audience)
                except AuthorityClientError as exc:
                    result.refused_outside = exc.error
                    step(
                        f"Agent asks for acme/infra, outside its delegation: refused "
                        f"({exc.error}: {exc.description})"
                    )

                early = await agent_client.token(TOOL, "acme/web", "create", audience=audience)
                await call(
                    "POST",
                    f"/v1/delegations/{delegation['id']}/revoke",
                    owner_key,
                    {"reason": "demo: work is done"},
                )
                step("Owner Ada revokes the delegation.")

                try:
                    await tools.post(
                        "/repos/acme/web/issues", json={"title": "One more"}, auth=auth
                    )
                except AuthorityClientError as exc:
                    result.refused_after_revoke = exc.error
                    step(
                        f"Agent's next call: the authority refuses the exchange "
                        f"({exc.error}: {exc.description})"
                    )

                follower = tool_app.feed if isinstance(tool_app, AuthorityMiddleware) else None
                for _ in range(100):  # the revocation reaches the tool server's feed
                    if follower is None or follower.revoked.delegations:
                        break
                    await asyncio.sleep(0.05)
                stale = await tools.post(
                    "/repos/acme/web/issues",
                    json={"title": "Replayed"},
                    headers={"Authorization": f"Bearer {early.value}"},
                )
                result.old_token_after_revoke = stale.status_code
                step(
                    f"A token minted just before the revocation, presented to the tool: "
                    f"{stale.status_code} ({stale.json().get('error_description')})"
                )
                await agent_client.aclose()

            auditor = (await issue_operator_key(services, "auditor", "demo auditor")).secret
            if services.sequencer is not None:
                await services.sequencer.run_once()
            async with httpx.AsyncClient(
                headers={"Authorization": f"Bearer {auditor}"}, timeout=10
            ) as audit:
                summary = await verify_sources(
                    export=issuer + paths.LEDGER_EXPORT,
                    checkpoints=issuer + paths.LEDGER_CHECKPOINTS,
                    keys=issuer + paths.LEDGER_KEYS,
                    state_path=None,
                    client=audit,
                )
            result.ledger = summary
            step(f"Auditor exports the ledger and verifies it offline: {summary}")
    return result


class _Steps:
    def __init__(self, print_: Printer) -> None:
        self._print = print_
        self._n = 0

    def __call__(self, text: str) -> None:
        self._n += 1
        self._print(f"{self._n:>2}. {text}")


def cmd_demo(args: argparse.Namespace) -> int:
    asyncio.run(run_demo())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="run the whole story on a temporary embedded authority")
    demo.set_defaults(func=cmd_demo)


if __name__ == "__main__":
    sys.exit(cmd_demo(argparse.Namespace()))
