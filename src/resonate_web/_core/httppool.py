"""A lean HTTP/1.1 client for the one request the Resonate protocol makes: ``POST /``.

The SDK's HTTP connection sends every request through aiohttp, whose generic
machinery (request and response objects, payload registry, cookie jar, timers,
tracing hooks) costs about 190 µs of CPU per call here, more than the gateway's
own work on a start. The protocol needs none of it: one method, one path, a
JSON body, a JSON answer. :class:`Pool` keeps persistent connections to one
origin and speaks just that, at about a third of the cost.

What it handles: ``http`` and ``https`` (the system's trust store), persistent
connections (reused last-in first-out, up to a limit, then callers wait),
answers delimited by ``Content-Length``, by chunked transfer coding, or by the
connection's close, interim ``1xx`` answers, and ``Connection: close``. A
request sent on a reused connection that the server had closed meanwhile (its
idle timeout) is sent again at once on a new one, as browsers do; any other
failure is raised as :class:`ConnectionLost` (an :class:`OSError`) for the
caller's retry. A connection whose request was canceled is closed, never reused,
and one left idle longer than ``keepalive`` (15 s, as aiohttp) is closed rather
than reused: a NAT or proxy between may have dropped it without a word, and a
request written on it would wait for an answer that never comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

__all__ = ["ConnectionLost", "Pool"]

#: Longest header block accepted (the protocol's answers carry a handful).
MAX_HEAD = 64 * 1024


class ConnectionLost(OSError):
    """The connection failed or closed before a whole answer came."""


class _Connection(asyncio.Protocol):
    """One persistent connection: one request at a time, its answer parsed as it comes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        #: When it was last put back idle (monotonic seconds).
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytes, bool]] | None = None
        #: Whether any byte of the current answer came (a request is then not resent).
        self.answered = False

    # ── asyncio.Protocol ────────────────────────────────────────────────────

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._answer is None:
            # Nothing was asked: a server does not speak first. Not reusable.
            self.close()
            return
        self.answered = True
        self._buffer += data
        try:
            parsed = _parse(self._buffer, eof=False)
        except ValueError as exc:
            self._fail(ConnectionLost(f"malformed answer: {exc}"))
            return
        if parsed is not None:
            self._resolve(parsed)

    def eof_received(self) -> bool | None:
        if self._answer is not None and self.answered:
            try:
                parsed = _parse(self._buffer, eof=True)
            except ValueError as exc:
                self._fail(ConnectionLost(f"malformed answer: {exc}"))
                return None
            if parsed is not None:
                status, body, _ = parsed
                self._resolve((status, body, False))
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None and not self._answer.done():
            why = f": {exc}" if exc else ""
            self._answer.set_exception(ConnectionLost(f"the connection closed{why}"))

    # ── requests ────────────────────────────────────────────────────────────

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send ``data`` (a whole request); the answer's status and body."""
        assert self.transport is not None
        self.answered = False
        self._buffer.clear()
        answer = self._answer = asyncio.get_running_loop().create_future()
        self.used = True
        try:
            self.transport.write(data)
            status, body, keep = await answer
        except BaseException:
            self.close()  # canceled or failed halfway: the stream's state is unknown
            raise
        finally:
            self._answer = None
        if not keep:
            self.close()
        return status, body

    def _resolve(self, parsed: tuple[int, bytes, bool]) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(parsed)

    def _fail(self, exc: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _parse(buffer: bytearray, *, eof: bool) -> tuple[int, bytes, bool] | None:
    """The whole answer at the start of ``buffer`` (status, body, whether the
    connection stays open), or ``None`` while it is incomplete. Interim ``1xx``
    answers are dropped from the buffer."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise ValueError("header block too long")
            return None
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError(f"malformed header line: {line[:80]!r}")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if 100 <= status < 200:
            del buffer[: end + 4]  # an interim answer (100 Continue): the real one follows
            continue
        break
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    start = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(buffer, start)
        return None if body is None else (status, body, keep)
    length = headers.get("content-length")
    if length is not None:
        n = int(length)
        if n < 0:
            raise ValueError("negative Content-Length")
        if len(buffer) < start + n:
            return None
        return status, bytes(buffer[start : start + n]), keep
    if status in (204, 304):
        return status, b"", keep
    # Delimited by the connection's close.
    return (status, bytes(buffer[start:]), False) if eof else None


def _dechunk(buffer: bytearray, at: int) -> bytes | None:
    """The body coded in chunks from ``at``, or ``None`` while incomplete."""
    body = bytearray()
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0].strip(), 16)
        at = line_end + 2
        if size == 0:
            # Trailer fields, if any, end with an empty line.
            while True:
                trailer_end = buffer.find(b"\r\n", at)
                if trailer_end < 0:
                    return None
                if trailer_end == at:
                    return bytes(body)
                at = trailer_end + 2
        if len(buffer) < at + size + 2:
            return None
        body += buffer[at : at + size]
        at += size + 2


class Pool:
    """Persistent connections to the origin of ``url``, posting to its path + ``/``."""

    def __init__(
        self,
        url: str,
        *,
        limit: int = 256,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 30.0,
        answer_timeout: float = 300.0,
        keepalive: float = 15.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = (parts.scheme == "https" and self.port == 443) or self.port == 80
        authority = name if default and parts.port is None else f"{name}:{self.port}"
        path = parts.path.rstrip("/") + "/"
        self._head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n"
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(limit)
        self._open: set[_Connection] = set()
        self.connect_timeout = connect_timeout
        self.answer_timeout = answer_timeout
        self.keepalive = keepalive
        #: How many connections were opened (tests read it).
        self.connections_made = 0

    def encode(self, body: bytes, headers: dict[str, str]) -> bytes:
        """The request posting ``body`` with ``headers``."""
        lines = [self._head]
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError(f"a line break in header {name!r}")
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(lines).encode("latin-1") + body

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """``POST`` ``body``; the answer's status and body. Raises :class:`ConnectionLost`
        (or another :class:`OSError`, or :class:`TimeoutError`) when no whole answer came."""
        data = self.encode(body, headers)
        async with self._slots:
            while True:
                connection = self._take()
                reused = connection is not None
                if connection is None:
                    connection = await self._connect()
                try:
                    async with asyncio.timeout(self.answer_timeout):
                        status, answer = await connection.request(data)
                except ConnectionLost:
                    if reused and not connection.answered:
                        continue  # closed by the server while idle: send it anew
                    raise
                finally:
                    if connection.closed:
                        self._open.discard(connection)
                if not connection.closed:
                    connection.idle_since = time.monotonic()
                    self._idle.append(connection)
                return status, answer

    def _take(self) -> _Connection | None:
        # The most recently used first; the oldest idle ones lapse from the left.
        stale = time.monotonic() - self.keepalive
        while self._idle and self._idle[0].idle_since < stale:
            lapsed = self._idle.popleft()
            lapsed.close()
            self._open.discard(lapsed)
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, connection = await loop.create_connection(
                _Connection,
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.host if self.ssl else None,
            )
        self.connections_made += 1
        self._open.add(connection)
        return connection

    def close(self) -> None:
        """Close every connection (requests still on their way fail)."""
        for connection in list(self._open):
            with contextlib.suppress(Exception):
                connection.close()
        self._open.clear()
        self._idle.clear()
