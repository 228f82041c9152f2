"""Gateway benchmark: requests per second through the gateway against the upstream called
directly, in one run, and the latency the gateway adds (p50, p99), measured with wrk.

It starts the authority (embedded), two upstreams (``bench/gateway_upstreams.py``: an
HTTP API and an ``mcp`` MCPServer answering stateless JSON), and ``authority gateway``
in front of them, each in its own process; registers the gateway's two resource servers,
their tools, one agent and one delegation over the API; mints one per-call token for each
scenario (long-lived, so that wrk can send the same request again: the gateway verifies
it locally on every request, and its revocation feed is healthy, so no introspection);
then drives, with the same connections and duration:

* HTTP: ``GET /repos/acme/web/issues/1`` direct, and through ``/u/api`` (route match,
  token verification, call match, feed check, credential injection, streamed answer);
* MCP: a ``tools/call`` (2026-07-28, JSON answer) direct, and through ``/u/tracker``
  (JSON-RPC parsing, the RFC 8785 digest of the arguments, the answer read, re-written
  and stripped of the upstream credential).

    python -m bench.gateway [--concurrency 16] [--duration 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from joserfc.jwk import OKPKey

from bench.load import HERE, Result, authority, authority_env, free_port, process, uvicorn_cmd

FIXED = HERE / "wrk" / "fixed.lua"
LIFETIME = 3600
UPSTREAM_KEY = "bench-upstream-key-" + "0" * 24
ARGUMENTS = {"repo": "acme/web", "title": "Crash on empty cart"}


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def serve(cmd: list[str], env: dict[str, str], port: int) -> Iterator[None]:
    import subprocess

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        wait_port(port)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(
    name: str, url: str, method: str, body: bytes, headers: dict[str, str], args: argparse.Namespace
) -> Result:
    import subprocess

    with tempfile.NamedTemporaryFile("wb", suffix=".body", delete=False) as handle:
        handle.write(body)
        path = handle.name
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.concurrency}",
        f"-d{round(args.duration)}s",
        "--timeout",
        "5s",
        "-s",
        str(FIXED),
        url,
        "--",
        method,
        path if body else "",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout  # noqa: S603
    os.unlink(path)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return Result(
        name=name,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        ok=data["ok"],
        failed=data["failed"],
        reused=0,
        socket_errors=data["socket_errors"],
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        single_use=False,
    )


def register(base: str, admin: str, gateway: str) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=30) as http:

        def post(path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
            response = http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

        owner = post("/v1/owners", admin, {"name": "bench-owner"})
        owner_key = post(f"/v1/owners/{owner['id']}/api-keys", admin, {})["api_key"]
        servers = {}
        for name, tools in (
            ("api", [("api.issues.get", "read")]),
            ("tracker", [("mcp.session.tracker", "connect"), ("tracker.issues.create", "create")]),
        ):
            server = post(
                "/v1/resource-servers", admin, {"name": name, "audience": f"{gateway}/u/{name}"}
            )
            servers[name] = server
            for tool, action in tools:
                post(
                    "/v1/tools",
                    admin,
                    {
                        "name": tool,
                        "resource_server_id": server["id"],
                        "actions": [action],
                        "risk_tier": 1,
                        "max_token_lifetime": LIFETIME,
                    },
                )
        key = OKPKey.generate_key("Ed25519", parameters={"kid": "bench-1"})
        agent = post(
            "/v1/agents",
            owner_key,
            {"name": "bench", "autonomy_level": 2, "jwks": {"keys": [key.as_dict(private=False)]}},
        )
        scope = [
            {"tool": "api.issues.get", "resources": ["acme/*"], "actions": ["read"]},
            {"tool": "tracker.issues.create", "resources": ["acme/*"], "actions": ["create"]},
        ]
        delegation = post(
            "/v1/delegations",
            owner_key,
            {"agent_id": agent["id"], "intent": "bench", "scope": scope, "expires_in": 7200},
        )
        return {"servers": servers, "agent": agent, "key": key, "delegation": delegation}


def gateway_config(
    folder: Path, issuer: str, gateway: str, ports: dict[str, int], world: dict[str, Any]
) -> Path:
    lines = [f'issuer = "{issuer}"', f'public_url = "{gateway}"', 'log_level = "warning"', ""]
    (folder / "upstream.key").write_text(UPSTREAM_KEY)
    for name, kind, url, extra in (
        (
            "api",
            "http",
            f"http://127.0.0.1:{ports['api']}",
            [
                "[[upstreams.routes]]",
                'method = "GET"',
                'path = "/repos/{org}/{repo}/issues/1"',
                'tool = "api.issues.get"',
                'action = "read"',
                'resource = "{org}/{repo}"',
            ],
        ),
        (
            "tracker",
            "mcp",
            f"http://127.0.0.1:{ports['mcp']}/mcp",
            [
                "[upstreams.tools.create_issue]",
                'tool = "tracker.issues.create"',
                'action = "create"',
                'resource = "{repo}"',
            ],
        ),
    ):
        secret = folder / f"{name}.secret"
        secret.write_text(world["servers"][name]["client_secret"])
        lines += [
            "[[upstreams]]",
            f'name = "{name}"',
            f'kind = "{kind}"',
            f'url = "{url}"',
            f'client_id = "{world["servers"][name]["id"]}"',
            f'client_secret = {{ file = "{secret}" }}',
            'credential = { type = "bearer", secret = { file = "%s" } }'
            % (folder / "upstream.key"),
            *extra,
            "",
        ]
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines))
    return path


async def mint(issuer: str, gateway: str, world: dict[str, Any]) -> tuple[str, str]:
    from authority.sdk import AgentClient

    async with AgentClient(
        issuer, world["agent"]["id"], world["key"], world["delegation"]["credential"]
    ) as agent:
        api = await agent.token(
            "api.issues.get", "acme/web", "read", audience=f"{gateway}/u/api", lifetime=LIFETIME
        )
        mcp = await agent.token(
            "tracker.issues.create",
            "acme/web",
            "create",
            audience=f"{gateway}/u/tracker",
            lifetime=LIFETIME,
            arguments=ARGUMENTS,
        )
    return api.value, mcp.value


def wait_healthy(gateway: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            feeds = httpx.get(gateway + "/healthz", timeout=1).json()["feeds"]
            if feeds and all(feeds.values()):
                return
        time.sleep(0.2)
    raise RuntimeError("the gateway's feeds did not catch up")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    ports = {
        "authority": free_port(),
        "api": free_port(),
        "mcp": free_port(),
        "gateway": free_port(),
    }
    issuer = f"http://127.0.0.1:{ports['authority']}"
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = authority_env("embedded", tmp, ports["authority"], 1)
        env.update(AUTHORITY_ACCESS_TOKEN_MAX_LIFETIME=str(LIFETIME), AUTHORITY_ISSUER=issuer)
        authority("migrate", env=env)
        admin = authority("admin", "bootstrap", env=env).split()[-1].strip()
        env["PYTHONPATH"] = str(HERE.parent)
        plain = {k: v for k, v in env.items() if not k.startswith("AUTHORITY_")}
        with (
            process(
                uvicorn_cmd("authority.asgi:app", ports["authority"], 1), env, issuer + "/readyz"
            ),
            serve(
                uvicorn_cmd("bench.gateway_upstreams:http_app", ports["api"], 1),
                plain,
                ports["api"],
            ),
            serve(
                uvicorn_cmd("bench.gateway_upstreams:mcp_app", ports["mcp"], 1), plain, ports["mcp"]
            ),
        ):
            world = register(issuer, admin, gateway)
            config = gateway_config(folder, issuer, gateway, ports, world)
            profile = os.environ.get("BENCH_GATEWAY_PROFILE")
            cmd = [
                sys.executable,
                *(["-m", "cProfile", "-o", profile] if profile else []),
                "-m",
                "authority.cli",
                "gateway",
                "--config",
                str(config),
                "--port",
                str(ports["gateway"]),
            ]
            with serve(cmd, plain, ports["gateway"]):
                wait_healthy(gateway)
                api_token, mcp_token = asyncio.run(mint(issuer, gateway, world))
                results = scenarios(args, ports, gateway, api_token, mcp_token)
    report(results)


def scenarios(
    args: argparse.Namespace, ports: dict[str, int], gateway: str, api_token: str, mcp_token: str
) -> list[Result]:
    path = "/repos/acme/web/issues/1"
    direct_http = f"http://127.0.0.1:{ports['api']}"
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": "create_issue",
                "arguments": ARGUMENTS,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }
    ).encode()
    mcp_headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "create_issue",
    }
    return [
        run("HTTP, upstream direct", direct_http + path, "GET", b"", {}, args),
        run(
            "HTTP, through the gateway",
            gateway + "/u/api" + path,
            "GET",
            b"",
            {"Authorization": f"Bearer {api_token}"},
            args,
        ),
        run(
            "MCP tools/call, upstream direct",
            f"http://127.0.0.1:{ports['mcp']}/mcp",
            "POST",
            body,
            mcp_headers,
            args,
        ),
        run(
            "MCP tools/call, through the gateway",
            gateway + "/u/tracker",
            "POST",
            body,
            {**mcp_headers, "Authorization": f"Bearer {mcp_token}"},
            args,
        ),
    ]


def report(results: list[Result]) -> None:
    print()
    print(f"{'scenario':<38} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for r in results:
        print(
            f"{r.name:<38} {r.rate:>8.0f} {r.p50_ms:>7.1f} {r.p95_ms:>7.1f} {r.p99_ms:>7.1f} "
            f"{r.errors:>6}"
        )
    print()
    for direct, through in (results[0:2], results[2:4]):
        kind = direct.name.split(",")[0]
        ratio = through.rate / direct.rate if direct.rate else float("nan")
        p50, p99 = through.p50_ms - direct.p50_ms, through.p99_ms - direct.p99_ms
        print(
            f"{kind}: the gateway serves {ratio:.0%} of the direct rate; "
            f"adds {p50:.1f} ms at p50, {p99:.1f} ms at p99"
        )


if __name__ == "__main__":
    main()
