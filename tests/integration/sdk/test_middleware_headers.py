"""The middleware reads a request's credentials from its ASGI headers: names in any case,
one ``Authorization`` and one ``DPoP`` at most (RFC 6750 §2, RFC 9449 §4.3 item 1), the
``Host`` the request names for a DPoP proof's ``htu``."""

from __future__ import annotations

from starlette.types import Message

from authority.sdk.middleware import AuthorityMiddleware
from tests.integration.sdk.test_agent_client import sdk_client
from tests.integration.sdk.test_middleware import token, tool_server
from tests.support import RS_AUDIENCE, World

PATH = "/repos/acme/web/issues"
HOST = RS_AUDIENCE.split("://", 1)[1]


async def status(app: AuthorityMiddleware, headers: list[tuple[bytes, bytes]]) -> int:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "scheme": RS_AUDIENCE.split("://", 1)[0],
        "path": PATH,
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("10.0.0.1", 8080),
    }
    await app(scope, receive, send)
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


async def test_a_repeated_authorization_header_is_refused_whichever_comes_first(
    world: World,
) -> None:
    app = tool_server(world)
    good = f"Bearer {await token(world)}".encode()
    assert await status(app, [(b"authorization", good)]) == 200
    assert await status(app, [(b"authorization", b"Bearer x.y.z"), (b"authorization", good)]) == 400
    assert await status(app, [(b"Authorization", good), (b"authorization", good)]) == 400


async def test_header_names_are_read_in_any_case(world: World) -> None:
    app = tool_server(world)
    good = f"Bearer {await token(world)}".encode()
    assert await status(app, [(b"Authorization", good)]) == 200


async def test_a_dpop_proof_is_checked_against_the_host_the_request_names(world: World) -> None:
    app = tool_server(world)
    agent = sdk_client(world, dpop=True)
    value = await token(world, agent)
    bound = f"DPoP {value}".encode()
    proof = agent.dpop_proof("POST", RS_AUDIENCE + PATH, value).encode()
    elsewhere = agent.dpop_proof("POST", "https://elsewhere.example" + PATH, value).encode()
    host = (b"host", HOST.encode())
    assert await status(app, [host, (b"authorization", bound), (b"dpop", elsewhere)]) == 401
    # Without a Host header the URL is the server's address, which the proof does not name.
    assert await status(app, [(b"authorization", bound), (b"dpop", proof)]) == 401
    assert (
        await status(app, [(b"Host", HOST.encode()), (b"authorization", bound), (b"DPoP", proof)])
        == 200
    )
    # The same proof again is a replay (RFC 9449 §11.1).
    assert await status(app, [host, (b"authorization", bound), (b"dpop", proof)]) == 401


async def test_more_than_one_dpop_header_is_refused(world: World) -> None:
    """RFC 9449 §4.3 item 1: a request with two DPoP header fields is refused, even when
    one of them holds a valid proof."""
    app = tool_server(world)
    agent = sdk_client(world, dpop=True)
    value = await token(world, agent)
    bound = f"DPoP {value}".encode()
    proof = agent.dpop_proof("POST", RS_AUDIENCE + PATH, value).encode()
    host = (b"host", HOST.encode())
    assert (
        await status(app, [host, (b"authorization", bound), (b"dpop", b"x"), (b"DPoP", proof)])
        == 400
    )
    # The valid proof was not spent by the refused request: it is accepted alone.
    assert await status(app, [host, (b"authorization", bound), (b"dpop", proof)]) == 200
