"""Helpers for introspection, revocation, owner controls and the feed, as their users act.

Resource servers authenticate the way RFC 6749 §2.3.1 and RFC 7523 §2.2 say, encoded by
hand here (not by the authority's code); servers run in-process under uvicorn for the
streaming feed; a small TCP proxy stands between the authority and Redis or PostgreSQL
to cut or slow the connection for fault tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus

import httpx
import uvicorn

from tests.support import ISSUER, JWT_BEARER, AgentKey, World

INTROSPECT = "/oauth2/introspect"
REVOKE = "/oauth2/revoke"
FEED = "/v1/revocations/feed"
INACTIVE = b'{"active":false}'


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: form-urlencode both, then HTTP Basic (RFC 7617)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def client_assertion(
    key: AgentKey, client_id: str, now: float, *, aud: str = ISSUER, **overrides: Any
) -> dict[str, str]:
    """RFC 7523 §2.2 form members, signed with PyJWT."""
    assertion = key.attestation(client_id, now, aud=aud, **overrides)
    return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}


@dataclass
class Server:
    """A registered resource server and how it authenticates."""

    id: str
    audience: str
    secret: str | None = None
    key: AgentKey | None = None

    def auth(self, world: World, *, aud: str = ISSUER) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, form members) for one request."""
        if self.key is not None:
            return {}, client_assertion(self.key, self.id, world.clock.now(), aud=aud)
        assert self.secret is not None
        return basic(self.id, self.secret), {}


def world_server(world: World) -> Server:
    from tests.support import RS_AUDIENCE

    return Server(world.server_id, RS_AUDIENCE, secret=world.server_secret)


async def add_server(world: World, audience: str, *, method: str = "client_secret_basic") -> Server:
    body: dict[str, Any] = {
        "name": f"rs-{uuid.uuid4().hex[:6]}",
        "audience": audience,
        "auth_method": method,
    }
    key = None
    if method == "private_key_jwt":
        key = AgentKey()
        body["jwks"] = key.jwks()
    created = await world.post("/v1/resource-servers", world.admin, body)
    return Server(created["id"], audience, secret=created.get("client_secret"), key=key)


async def issue(world: World, **kwargs: Any) -> str:
    response = await world.exchange(**kwargs)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def as_server(
    world: World,
    path: str,
    token: str,
    server: Server | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``token`` to ``path`` authenticated as a resource server."""
    server = server or world_server(world)
    headers, form = server.auth(world)
    return await (client or world.client).post(
        path, data={"token": token, **form, **(extra or {})}, headers=headers
    )


async def introspect(
    world: World, token: str, server: Server | None = None, **kwargs: Any
) -> httpx.Response:
    return await as_server(world, INTROSPECT, token, server, **kwargs)


async def revoke_as_server(
    world: World, token: str, server: Server | None = None, **kwargs: Any
) -> httpx.Response:
    return await as_server(world, REVOKE, token, server, **kwargs)


async def revoke_as_agent(
    world: World,
    token: str,
    *,
    agent_id: str | None = None,
    key: AgentKey | None = None,
    aud: str = ISSUER,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    form = client_assertion(
        key or world.agent_key, agent_id or world.agent_id, world.clock.now(), aud=aud
    )
    return await (client or world.client).post(REVOKE, data={"token": token, **form})


async def is_active(world: World, token: str, **kwargs: Any) -> bool:
    response = await introspect(world, token, **kwargs)
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


# --- in-process servers ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int = 0) -> socket.socket:
    """A loopback socket bound before uvicorn sees it: port 0 takes a free port with no
    window for another process to take it first, and a port that is taken is an
    ``OSError`` here rather than uvicorn's ``sys.exit`` inside the event loop."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    # uvicorn ends a failed start (a lifespan that fails, a socket it cannot use) with
    # sys.exit: a SystemExit out of a task stops the whole event loop (and every fixture
    # on it), so it becomes an ordinary error of this one server.
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        raise RuntimeError(f"uvicorn did not start (exit {exc.code})") from None


@contextlib.asynccontextmanager
async def serving(
    app: Any,
    *,
    port: int = 0,
    sock: socket.socket | None = None,
    lifespan: Literal["on", "off"] = "off",
) -> AsyncIterator[str]:
    """Serve ``app`` on a loopback port (its services are started by the caller, unless
    ``lifespan`` is on) and yield its URL: ``sock`` (from ``listening``, held since its
    port was handed out), else ``port``, where 0 is any free port."""
    sock = sock or listening(port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan=lifespan, log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(_serve(server, sock))
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn did not start")
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


# --- a TCP proxy that can cut or slow a connection ---------------------------------------------
@dataclass
class Proxy:
    """Forward 127.0.0.1:port to ``target``; ``down()`` refuses and cuts, ``delay`` slows,
    ``stall()`` keeps connections open but forwards nothing until ``flow()``."""

    target_host: str
    target_port: int
    delay: float = 0.0
    port: int = field(default_factory=free_port)
    _server: asyncio.Server | None = None
    _links: set[asyncio.StreamWriter] = field(default_factory=set)
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    async def up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Stop listening (connections are refused) and cut every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._links.update({writer, up_writer})
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._links.discard(w)
            w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if self.delay:
                await asyncio.sleep(self.delay)
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        writer.transport.abort()

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        scheme, rest = url.split("://", 1)
        netloc, _, path = rest.partition("/")
        userinfo = netloc.rpartition("@")[0]
        host = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return f"{scheme}://{host}/{path}"
