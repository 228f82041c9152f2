"""The enforcement point's own connections to the authority (``authority.sdk.connections``),
against a raw loopback server: what is read, what is kept, what fails closed."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from authority.sdk.connections import AuthorityConnections, AuthorityUnreachable

Answer = Callable[[bytes], Awaitable[bytes | None]]


@dataclass
class RawServer:
    """Reads one request head and body at a time; ``answer`` says what to write back
    (None: close without a word)."""

    answer: Answer
    close_after: bool = False
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                data = await self.answer(request)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client
    context that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(raw: RawServer, context: ssl.SSLContext | None = None) -> str:
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"{'https' if context else 'http'}://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def json_answer(extra: bytes = b"") -> bytes:
    body = b'{"active":false}'
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


async def post(connections: AuthorityConnections, token: str = "t") -> tuple[int, bytes]:
    answer = await connections.post("/introspect", (), b"token=" + token.encode())
    return answer.status, answer.body


def answer_of(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


A = b'{"active":true,"sub":"A"}'
B = b'{"active":false}'


async def test_a_kept_connection_serves_the_next_requests(
    serve: Callable[..., Awaitable[str]],
) -> None:
    async def ok(_: bytes) -> bytes:
        return json_answer()

    raw = RawServer(ok)
    connections = AuthorityConnections(await serve(raw), max_connections=1)
    try:
        answers = [await post(connections) for _ in range(3)]
        concurrent = await asyncio.gather(*(post(connections) for _ in range(5)))
    finally:
        await connections.aclose()
    assert answers == [(200, b'{"active":false}')] * 3
    assert list(concurrent) == [(200, b'{"active":false}')] * 5
    assert raw.connections == 1
    assert raw.requests[0].startswith(b"POST /introspect HTTP/1.1\r\nHost: 127.0.0.1:")
    assert raw.requests[0].endswith(b"\r\n\r\ntoken=t")


@pytest.mark.parametrize("connection", [b"close", b"close, x", b"x, Close"])
async def test_connection_close_is_honoured(
    serve: Callable[..., Awaitable[str]], connection: bytes
) -> None:
    async def closing(_: bytes) -> bytes:
        return json_answer(b"Connection: " + connection + b"\r\n")

    raw = RawServer(closing)
    connections = AuthorityConnections(await serve(raw))
    try:
        for _ in range(2):
            assert await post(connections) == (200, b'{"active":false}')
    finally:
        await connections.aclose()
    assert raw.connections == 2


async def test_a_chunked_answer_is_read_whole(serve: Callable[..., Awaitable[str]]) -> None:
    async def chunked(_: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'7\r\n{"activ\r\n9;x=y\r\ne":false}\r\n0\r\nTrailer: z\r\n\r\n'
        )

    connections = AuthorityConnections(await serve(RawServer(chunked)))
    try:
        assert await post(connections) == (200, b'{"active":false}')
        assert await post(connections) == (200, b'{"active":false}')  # and kept
    finally:
        await connections.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        None,  # closed without a word
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}",  # cut short
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",  # too large
        b"SMTP ready\r\n\r\n",  # not HTTP
        b"HTTP/1.1 2xx OK\r\n\r\n",  # no status
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",  # no header
        b"HTTP/1.1 200 OK\r\nContent-Length: +1_6\r\n\r\n" + B,
        b"HTTP/1.1 200 OK\r\nContent-Length : 16\r\n\r\n" + B,
        b"HTTP/1.1 200 OK\r\n Content-Length: 16\r\n\r\n" + B,
        b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\nContent-Length: 3\r\n\r\n" + B,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n" + B + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + B + b"\r\n-0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: notchunked\r\n\r\n10\r\n" + B + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n10\r\n" + B + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"10\r\n" + B + b"\r\n0\r\n\r\n",  # two framings (RFC 9112 section 6.3)
        b"HTTP/1.1 20 OK\r\nContent-Length: 16\r\n\r\n" + B,  # a status of two digits
        b"HTTP/1.1  200 OK\r\nContent-Length: 16\r\n\r\n" + B,
        b"HTTP/2 200 OK\r\nContent-Length: 16\r\n\r\n" + B,
        b"HTTP/1.1 103 Early Hints\r\n\r\n" * 9 + answer_of(B),  # interim answers without end
    ],
)
async def test_anything_but_a_whole_answer_is_unreachable(
    serve: Callable[..., Awaitable[str]], answer: bytes | None
) -> None:
    async def bad(_: bytes) -> bytes | None:
        return answer

    raw = RawServer(bad, close_after=True)
    connections = AuthorityConnections(await serve(raw), max_connections=1)
    try:
        with pytest.raises(AuthorityUnreachable):
            await post(connections)
    finally:
        await connections.aclose()


async def test_a_silent_authority_times_out(serve: Callable[..., Awaitable[str]]) -> None:
    never = asyncio.Event()

    async def silent(_: bytes) -> bytes:
        await never.wait()
        return b""

    connections = AuthorityConnections(await serve(RawServer(silent)), timeout=0.2)
    try:
        with pytest.raises(AuthorityUnreachable):
            await post(connections)
    finally:
        never.set()
        await connections.aclose()


async def test_https_with_a_trusted_certificate_only(
    serve: Callable[..., Awaitable[str]], tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    async def ok(_: bytes) -> bytes:
        return json_answer()

    server_context, trusting = tls
    url = await serve(RawServer(ok), server_context)
    trusted = AuthorityConnections(url, ssl_context=trusting)
    untrusted = AuthorityConnections(url)  # the system's roots: not this self-signed one
    try:
        assert await post(trusted) == (200, b'{"active":false}')
        with pytest.raises(AuthorityUnreachable):
            await post(untrusted)
    finally:
        await trusted.aclose()
        await untrusted.aclose()


def by_token(answers: dict[bytes, bytes]) -> Answer:
    async def answer(request: bytes) -> bytes:
        return answers[request.rpartition(b"token=")[2]]

    return answer


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
    ],
)
async def test_an_interim_answer_is_skipped_not_taken_for_the_answer(
    serve: Callable[..., Awaitable[str]], interim: bytes
) -> None:
    # Were the interim answer taken for A's, A's real answer would stay unread on the kept
    # connection and be read as B's: a revoked B would pass as A.
    raw = RawServer(by_token({b"A": interim + answer_of(A), b"B": answer_of(B)}))
    connections = AuthorityConnections(await serve(raw), max_connections=1)
    try:
        assert await post(connections, "A") == (200, A)
        assert await post(connections, "B") == (200, B)
    finally:
        await connections.aclose()
    assert raw.connections == 1


async def test_two_framings_are_refused_and_the_connection_dropped(
    serve: Callable[..., Awaitable[str]],
) -> None:
    framed_twice = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"10\r\n" + B + b"\r\n0\r\n\r\n" + answer_of(A)  # and a smuggled answer behind
    )
    raw = RawServer(by_token({b"A": framed_twice, b"B": answer_of(B)}))
    connections = AuthorityConnections(await serve(raw), max_connections=1)
    try:
        with pytest.raises(AuthorityUnreachable):
            await post(connections, "A")
        assert await post(connections, "B") == (200, B)
    finally:
        await connections.aclose()
    assert raw.connections == 2


async def test_bytes_after_the_answer_drop_the_connection(
    serve: Callable[..., Awaitable[str]],
) -> None:
    raw = RawServer(by_token({b"A": answer_of(B) + answer_of(A), b"B": answer_of(B)}))
    connections = AuthorityConnections(await serve(raw), max_connections=1)
    try:
        assert await post(connections, "A") == (200, B)
        assert await post(connections, "B") == (200, B)  # its own, not the one left over
    finally:
        await connections.aclose()
    assert raw.connections == 2


async def test_bytes_arriving_on_an_idle_connection_drop_it(
    serve: Callable[..., Awaitable[str]],
) -> None:
    writers: list[asyncio.StreamWriter] = []

    @dataclass
    class Chatty(RawServer):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await super().handle(reader, writer)

    raw = Chatty(by_token({b"A": answer_of(B), b"B": answer_of(B)}))
    connections = AuthorityConnections(await serve(raw), max_connections=1)
    try:
        assert await post(connections, "A") == (200, B)
        (idle,) = connections._idle
        writers[0].write(answer_of(A))  # an answer nobody asked for
        for _ in range(10_000):
            if idle.link.closed:
                break
            await asyncio.sleep(0.001)
        assert idle.link.closed
        assert await post(connections, "B") == (200, B)
    finally:
        await connections.aclose()
    assert raw.connections == 2


async def test_a_late_answer_is_never_read_by_the_next_request(
    serve: Callable[..., Awaitable[str]],
) -> None:
    late = asyncio.Event()

    async def slow_for_a(request: bytes) -> bytes:
        if request.endswith(b"token=A"):
            await late.wait()
            return answer_of(A)
        return answer_of(B)

    raw = RawServer(slow_for_a)
    connections = AuthorityConnections(await serve(raw), max_connections=1, timeout=0.2)
    try:
        with pytest.raises(AuthorityUnreachable):
            await post(connections, "A")
        late.set()  # A's answer is written now, after its request gave up
        assert await post(connections, "B") == (200, B)
    finally:
        await connections.aclose()
    assert raw.connections == 2


async def test_a_malformed_request_head_is_unreachable_before_any_connection(
    serve: Callable[..., Awaitable[str]],
) -> None:
    async def ok(_: bytes) -> bytes:
        return json_answer()

    raw = RawServer(ok)
    connections = AuthorityConnections(await serve(raw))
    try:
        with pytest.raises(AuthorityUnreachable):
            await connections.post("/introspect", [(b"Authorization", b"x\r\nX: y")], b"")
        with pytest.raises(AuthorityUnreachable):
            await connections.post("/intro spect", (), b"")
    finally:
        await connections.aclose()
    assert raw.connections == 0


def test_the_connections_work_on_uvloop() -> None:
    """uvicorn runs a tool server on uvloop when it is installed: its transports are not
    asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")

    async def kept() -> tuple[list[tuple[int, bytes]], int]:
        raw = RawServer(by_token({b"A": answer_of(A), b"B": answer_of(B)}))
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connections = AuthorityConnections(f"http://127.0.0.1:{port}", max_connections=1)
        try:
            answers = [await post(connections, "A"), await post(connections, "B")]
        finally:
            await connections.aclose()
            server.close()
            await server.wait_closed()
        return answers, raw.connections

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        answers, opened = runner.run(kept())
    assert answers == [(200, A), (200, B)]
    assert opened == 1
