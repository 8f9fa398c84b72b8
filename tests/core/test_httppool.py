"""The lean HTTP/1.1 client the Resonate server connection posts with
(``resonate_web._core.httppool``), against real sockets: a scripted server that
answers the ways HTTP/1.1 servers do, and one over TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from resonate_web._core.httppool import ConnectionLost, Pool

pytestmark = pytest.mark.timeout(30)

#: Reads one request, returns the raw bytes to answer and whether to close after.
Script = Callable[[bytes], tuple[bytes, bool]]


class Server:
    """A TCP server answering each request with its script; counts connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.accepted = 0
        self.requests: list[bytes] = []
        self.closing_idle = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer, close = self.script(head + body)
                writer.write(answer)
                await writer.drain()
                if close or self.closing_idle:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(
    script: Script, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, int]]:
    server = Server(script)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        listener.close()
        await listener.wait_closed()


def sized(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


def echo(request: bytes) -> tuple[bytes, bool]:
    return sized(request.split(b"\r\n\r\n", 1)[1]), False


async def test_answers_by_length_reuse_one_connection() -> None:
    async with serving(echo) as (server, port):
        pool = Pool(f"http://127.0.0.1:{port}/base/")
        for i in range(20):
            status, body = await pool.post(f'{{"n":{i}}}'.encode(), {"X-Test": "1"})
            assert (status, body) == (200, f'{{"n":{i}}}'.encode())
        assert server.accepted == 1 and pool.connections_made == 1
        first = server.requests[0].decode()
        assert first.startswith("POST /base/ HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{port}\r\n" in first and "X-Test: 1\r\n" in first
        pool.close()


async def test_concurrent_requests_use_a_connection_each_up_to_the_limit() -> None:
    async with serving(echo) as (server, port):
        pool = Pool(f"http://127.0.0.1:{port}", limit=3)
        answers = await asyncio.gather(*(pool.post(str(i).encode(), {}) for i in range(30)))
        assert [body for _, body in answers] == [str(i).encode() for i in range(30)]
        assert 1 <= server.accepted <= 3
        pool.close()


async def test_chunked_answers_with_extensions_and_trailers() -> None:
    def chunked(request: bytes) -> tuple[bytes, bool]:
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
        ), False

    async with serving(chunked) as (server, port):
        pool = Pool(f"http://127.0.0.1:{port}")
        assert await pool.post(b"{}", {}) == (200, b"hello world")
        assert await pool.post(b"{}", {}) == (200, b"hello world")
        assert server.accepted == 1
        pool.close()


async def test_interim_answers_connection_close_and_close_delimited_bodies() -> None:
    answers = iter(
        [
            (b"HTTP/1.1 100 Continue\r\n\r\n" + sized(b"after continue"), False),
            (sized(b"then close", "Connection: close"), True),
            (b"HTTP/1.0 500 Internal Server Error\r\n\r\nuntil the end", True),
            (sized(b"", "Connection: keep-alive"), False),
        ]
    )
    async with serving(lambda _: next(answers)) as (server, port):
        pool = Pool(f"http://127.0.0.1:{port}")
        assert await pool.post(b"1", {}) == (200, b"after continue")
        assert await pool.post(b"2", {}) == (200, b"then close")
        assert await pool.post(b"3", {}) == (500, b"until the end")
        assert await pool.post(b"4", {}) == (200, b"")
        assert server.accepted == 3  # a new connection after each close
        pool.close()


async def test_a_connection_the_server_closed_while_idle_is_replaced_at_once() -> None:
    async with serving(echo) as (server, port):
        server.closing_idle = True  # every connection closes after one answer
        pool = Pool(f"http://127.0.0.1:{port}")
        for i in range(5):
            assert await pool.post(str(i).encode(), {}) == (200, str(i).encode())
            await asyncio.sleep(0.05)  # the close reaches the idle connection
        assert server.accepted == 5
        # At once: a request may go out on a connection whose close is on its way.
        for i in range(50):
            assert await pool.post(str(i).encode(), {}) == (200, str(i).encode())
        assert server.accepted == 55
        pool.close()


async def test_a_connection_closed_before_any_answer_raises_for_the_caller_to_retry() -> None:
    def hang_up(request: bytes) -> tuple[bytes, bool]:
        return b"", True

    async with serving(hang_up) as (_, port):
        pool = Pool(f"http://127.0.0.1:{port}")
        with pytest.raises(ConnectionLost):
            await pool.post(b"{}", {})
        pool.close()


async def test_malformed_answers_and_refused_connections_are_os_errors() -> None:
    async with serving(lambda _: (b"SPDY/9 nope\r\n\r\n", False)) as (_, port):
        pool = Pool(f"http://127.0.0.1:{port}")
        with pytest.raises(ConnectionLost, match="malformed answer"):
            await pool.post(b"{}", {})
        pool.close()
    async with serving(echo) as (_, port):
        pass  # the port is free again
    with pytest.raises(ConnectionRefusedError):
        await Pool(f"http://127.0.0.1:{port}").post(b"{}", {})


async def test_a_canceled_request_closes_its_connection_and_the_next_one_works() -> None:
    def late(request: bytes) -> tuple[bytes, bool]:
        return sized(b"late"), False

    async with serving(echo) as (server, port):
        pool = Pool(f"http://127.0.0.1:{port}", answer_timeout=0.2)
        server.script = lambda request: (b"", False)  # says nothing: the request times out
        with pytest.raises(TimeoutError):
            await pool.post(b"{}", {})
        server.script = late
        assert await pool.post(b"{}", {}) == (200, b"late")
        assert server.accepted == 2  # the timed-out connection was not reused
        pool.close()


async def test_header_values_cannot_carry_line_breaks() -> None:
    pool = Pool("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="line break"):
        pool.encode(b"{}", {"Authorization": "Bearer x\r\nEvil: 1"})
    with pytest.raises(ValueError, match="not an http"):
        Pool("ftp://example.com")


def _self_signed(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for 127.0.0.1, and a client context
    trusting only it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_https_checks_the_certificate_and_reuses_its_connection(tmp_path: Path) -> None:
    server_tls, client_tls = _self_signed(tmp_path)
    async with serving(echo, tls=server_tls) as (server, port):
        pool = Pool(f"https://127.0.0.1:{port}", ssl_context=client_tls)
        for i in range(3):
            assert await pool.post(str(i).encode(), {}) == (200, str(i).encode())
        assert server.accepted == 1
        pool.close()
        untrusted = Pool(f"https://127.0.0.1:{port}")  # the system's trust store
        with pytest.raises(ssl.SSLCertVerificationError):
            await untrusted.post(b"{}", {})


async def test_a_connection_idle_past_its_keepalive_is_closed_not_reused() -> None:
    """A connection a NAT may have dropped silently is not written on: past the
    keepalive it is closed (the server sees it go) and a new one is opened."""
    async with serving(echo) as (server, port):
        pool = Pool(f"http://127.0.0.1:{port}", keepalive=1.0)
        assert await pool.post(b"1", {}) == (200, b"1")
        assert await pool.post(b"2", {}) == (200, b"2")
        assert server.accepted == 1  # reused while fresh
        await asyncio.sleep(1.1)
        assert await pool.post(b"3", {}) == (200, b"3")
        assert server.accepted == 2 and pool.connections_made == 2
        pool.close()
