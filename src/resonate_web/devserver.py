"""A local Resonate-protocol server, for development and tests.

``resonate-web dev`` speaks the protocol ``resonate-sdk``'s HTTP and SSE
connections use, so gateways and workers on one machine can run as separate
processes without installing anything else:

- ``POST /``: one request envelope in, one response envelope out;
- ``GET /poll/{group}/{pid}``: the process's event stream (``data:`` frames of
  ``execute`` and ``unblock`` messages);
- ``GET /health``: liveness, with the number of connected streams per group.

Protocol semantics are not re-implemented here: every request is applied to the
SDK's own reference state machine (:class:`resonate.connections.local.ServerState`,
the one behind its in-process connection). This module only adds what a
network server needs around it: a clock that advances timers and leases, and
delivery of the state machine's outgoing messages by address --
``poll://uni@{group}/{pid}`` to that process's stream, ``poll://any@{group}`` to
one connected member of the group (round robin), held back while nobody is
connected. When a stream drops, what was queued for it, and every ``execute``
it was sent that nobody has picked up, moves to another member at once, so a
killed worker's work does not wait for the state machine's 30 s retry.

State is in memory: restarting the dev server forgets everything. Schedules are
stored but never fired (the state machine keeps them as stubs). Use a Resonate
server (``resonate serve``) or PostgreSQL in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web
from resonate.error import ServerError

from resonate_web._sdk import (
    OutgoingMessage,
    ServerState,
    unwrap_request_envelope,
    wrap_response_envelope,
)

logger = logging.getLogger("resonate_web.devserver")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
#: How often timers (promise timeouts, durable sleeps) and leases are advanced.
TICK_INTERVAL = 0.1
#: A comment frame on idle streams, so proxies keep them open and dead peers show.
KEEPALIVE = 15.0
#: How long messages for a disconnected process are kept for it to reconnect.
UNICAST_RETENTION = 60.0
#: How often bookkeeping of delivered messages is pruned.
PRUNE_INTERVAL = 5.0

_SCHEME = "poll://"
_FORBIDDEN = set("/@: ")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Address:
    """A parsed ``poll://`` delivery address."""

    group: str
    pid: str | None  # None: any member of the group

    @classmethod
    def parse(cls, address: str) -> Address | None:
        if not address.startswith(_SCHEME):
            return None
        mode, sep, rest = address.removeprefix(_SCHEME).partition("@")
        if not sep:
            return None
        if mode == "any" and rest and not set(rest) & _FORBIDDEN:
            return cls(rest, None)
        group, slash, pid = rest.partition("/")
        if mode == "uni" and slash and _name_ok(group) and _name_ok(pid):
            return cls(group, pid)
        return None


def _name_ok(name: str) -> bool:
    return bool(name) and not set(name) & _FORBIDDEN


@dataclass
class Message:
    address: str
    body: Any

    def task(self) -> tuple[str, int] | None:
        """``(task id, version)`` of an ``execute`` message, else ``None``."""
        if not isinstance(self.body, dict) or self.body.get("kind") != "execute":
            return None
        task = (self.body.get("data") or {}).get("task") or {}
        tid, version = task.get("id"), task.get("version", 0)
        if isinstance(tid, str) and isinstance(version, int):
            return tid, version
        return None


@dataclass(eq=False)
class Stream:
    """One connected ``GET /poll/{group}/{pid}``."""

    group: str
    pid: str
    queue: asyncio.Queue[Message | None] = field(default_factory=asyncio.Queue)
    #: ``execute`` messages written to this stream, by task id: re-routed if the
    #: stream drops before anyone acquires the task.
    delivered: dict[str, Message] = field(default_factory=dict)


class DevServer:
    """The state machine, the clock, and message delivery; :meth:`app` serves it."""

    def __init__(
        self,
        *,
        tick_interval: float = TICK_INTERVAL,
        keepalive: float = KEEPALIVE,
        unicast_retention: float = UNICAST_RETENTION,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.state = ServerState()
        self.tick_interval = tick_interval
        self.keepalive = keepalive
        self.unicast_retention = unicast_retention
        self._clock = clock
        self._streams: dict[str, list[Stream]] = {}
        self._round_robin: dict[str, int] = {}
        #: Per group, in arrival order; an ``execute`` is keyed by its task id, so
        #: the state machine's periodic re-sends of a waiting task do not pile up.
        self._anycast_backlog: dict[str, dict[object, Message]] = {}
        self._unicast_backlog: dict[tuple[str, str], deque[tuple[float, Message]]] = {}
        self._keys = itertools.count()
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False

    # ── the protocol ────────────────────────────────────────────────────────

    def apply(self, raw: bytes) -> tuple[int, bytes]:
        """Apply one request envelope; return the HTTP status and response envelope.

        Runs without awaiting, so on the event loop it is atomic: requests and
        ticks never interleave inside the state machine.
        """
        try:
            request = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            return 400, _envelope_error(None, None, 400, f"invalid JSON request: {exc}")
        flat = unwrap_request_envelope(request)
        kind = flat.get("kind") if isinstance(flat, dict) else None
        corr_id = flat.get("corrId") if isinstance(flat, dict) else None
        try:
            response = self.state.apply(self._clock(), flat)
        except ServerError as exc:
            self.state.outgoing = []
            return 200, _envelope_error(kind, corr_id, exc.code, exc.message)
        except Exception as exc:  # a request the state machine cannot digest
            logger.exception("request %s failed", kind)
            self.state.outgoing = []
            return 200, _envelope_error(kind, corr_id, 500, f"{type(exc).__name__}: {exc}")
        outgoing, self.state.outgoing = self.state.outgoing, []
        self._route(outgoing)
        return 200, msgspec.json.encode(wrap_response_envelope(response))

    def tick(self) -> None:
        """Advance time: expire promises, release lapsed leases, retry tasks."""
        now = self._clock()
        for timeout in self.state.t_timeouts:
            task = self.state.tasks.get(timeout.id)
            if timeout.typ == 1 and now >= timeout.timeout and task and task.state == "acquired":
                logger.info(
                    "lease of task %s expired (held by %s): moving it on", task.id, task.pid
                )
        self.state.outgoing = []
        self.state.tick(now)
        outgoing, self.state.outgoing = self.state.outgoing, []
        self._route(outgoing)

    # ── delivery ────────────────────────────────────────────────────────────

    def _route(self, outgoing: list[OutgoingMessage]) -> None:
        for out in outgoing:
            self.deliver(Message(out.address, out.message))

    def deliver(self, message: Message, *, avoid: Stream | None = None) -> None:
        """Queue ``message`` on the stream its address names, or hold it back."""
        address = Address.parse(message.address)
        if address is None:
            logger.warning("dropping a message for an unreachable address: %s", message.address)
            return
        if address.pid is not None:
            stream = self._unicast_stream(address.group, address.pid, avoid)
            if stream is not None:
                stream.queue.put_nowait(message)
            else:
                backlog = self._unicast_backlog.setdefault((address.group, address.pid), deque())
                backlog.append((time.monotonic(), message))
            return
        members = [s for s in self._streams.get(address.group, []) if s is not avoid]
        if not members:
            ref = message.task()
            key = ref[0] if ref is not None else next(self._keys)
            self._anycast_backlog.setdefault(address.group, {})[key] = message
            return
        turn = self._round_robin.get(address.group, 0)
        self._round_robin[address.group] = turn + 1
        members[turn % len(members)].queue.put_nowait(message)

    def _unicast_stream(self, group: str, pid: str, avoid: Stream | None) -> Stream | None:
        found = None
        for stream in self._streams.get(group, []):
            if stream.pid == pid and stream is not avoid:
                found = stream  # the newest connection of that process wins
        return found

    def is_current(self, message: Message) -> bool:
        """False for an ``execute`` whose task has moved on (acquired, done, newer)."""
        ref = message.task()
        if ref is None:
            return True
        task = self.state.tasks.get(ref[0])
        return task is not None and task.state == "pending" and task.version == ref[1]

    def attach(self, stream: Stream) -> None:
        self._streams.setdefault(stream.group, []).append(stream)
        logger.info("stream connected: group=%s pid=%s", stream.group, stream.pid)
        horizon = time.monotonic() - self.unicast_retention
        for _at, message in self._unicast_backlog.pop((stream.group, stream.pid), deque()):
            if _at >= horizon:
                stream.queue.put_nowait(message)
        for message in self._anycast_backlog.pop(stream.group, {}).values():
            self.deliver(message)

    def detach(self, stream: Stream, in_flight: Message | None) -> None:
        """Drop ``stream``; move its undelivered and unclaimed messages elsewhere."""
        members = self._streams.get(stream.group, [])
        if stream in members:
            members.remove(stream)
        if not members:
            self._streams.pop(stream.group, None)
        leftovers: list[Message] = [] if in_flight is None else [in_flight]
        while not stream.queue.empty():
            message = stream.queue.get_nowait()
            if message is not None:
                leftovers.append(message)
        leftovers.extend(stream.delivered.values())
        stream.delivered.clear()
        moved = 0
        for message in leftovers:
            if self.is_current(message):
                self.deliver(message, avoid=stream)
                moved += 1
        logger.info(
            "stream disconnected: group=%s pid=%s (%d message(s) re-routed)",
            stream.group,
            stream.pid,
            moved,
        )

    def prune(self) -> None:
        """Forget delivered executes that were claimed, and expired unicast backlog."""
        for members in self._streams.values():
            for stream in members:
                for tid, message in list(stream.delivered.items()):
                    if not self.is_current(message):
                        del stream.delivered[tid]
        horizon = time.monotonic() - self.unicast_retention
        for key, backlog in list(self._unicast_backlog.items()):
            while backlog and backlog[0][0] < horizon:
                backlog.popleft()
            if not backlog:
                del self._unicast_backlog[key]

    def connected(self) -> dict[str, int]:
        return {group: len(members) for group, members in sorted(self._streams.items())}

    # ── HTTP ────────────────────────────────────────────────────────────────

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/", self._post)
        app.router.add_get("/poll/{group}/{pid}", self._poll)
        app.router.add_get("/health", self._health)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self._ticker = asyncio.create_task(self._tick_loop())

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing = True
        for members in self._streams.values():
            for stream in members:
                stream.queue.put_nowait(None)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def _tick_loop(self) -> None:
        last_prune = time.monotonic()
        while True:
            try:
                self.tick()
                if time.monotonic() - last_prune >= PRUNE_INTERVAL:
                    self.prune()
                    last_prune = time.monotonic()
            except Exception:  # keep the clock running whatever one tick did
                logger.exception("dev server tick failed")
            await asyncio.sleep(self.tick_interval)

    async def _post(self, request: web.Request) -> web.Response:
        status, body = self.apply(await request.read())
        return web.Response(status=status, body=body, content_type="application/json")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "server": "resonate-web dev", "streams": self.connected()}
        )

    async def _poll(self, request: web.Request) -> web.StreamResponse:
        group, pid = request.match_info["group"], request.match_info["pid"]
        if not (_name_ok(group) and _name_ok(pid)):
            raise web.HTTPBadRequest(text="a group and a pid are names without '/@: '")
        if self._closing:
            raise web.HTTPServiceUnavailable()
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        stream = Stream(group, pid)
        self.attach(stream)
        in_flight: Message | None = None
        try:
            await response.write(b": connected\n\n")
            while True:
                try:
                    in_flight = await asyncio.wait_for(stream.queue.get(), self.keepalive)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if in_flight is None:  # shutting down
                    break
                if self.is_current(in_flight):
                    await response.write(b"data: " + msgspec.json.encode(in_flight.body) + b"\n\n")
                    ref = in_flight.task()
                    if ref is not None:
                        stream.delivered[ref[0]] = in_flight
                        logger.info("task %s (v%d) -> %s/%s", ref[0], ref[1], group, pid)
                in_flight = None
        except (ConnectionError, RuntimeError) as exc:
            logger.debug("stream %s/%s closed: %r", group, pid, exc)
        finally:
            self.detach(stream, in_flight)
        return response


def _envelope_error(kind: Any, corr_id: Any, status: int, message: str) -> bytes:
    return msgspec.json.encode(
        wrap_response_envelope(
            {"kind": kind, "corrId": corr_id, "status": status, "error": message}
        )
    )


async def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    stop: asyncio.Event | None = None,
    server: DevServer | None = None,
) -> None:
    """Serve a :class:`DevServer` on ``host:port`` until ``stop`` is set."""
    server = server or DevServer()
    stop = stop or asyncio.Event()
    runner = web.AppRunner(
        server.app(), handler_cancellation=True, access_log=None, shutdown_timeout=2.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    logger.info(
        "resonate-web dev server ready on http://%s:%d (development only: state is in memory)",
        host,
        port,
    )
    try:
        await stop.wait()
    finally:
        logger.info("dev server stopping")
        await runner.cleanup()


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Blocking entry point of ``resonate-web dev``: serve until SIGTERM/SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(host, port, stop=stop)

    asyncio.run(main())
    return 0
