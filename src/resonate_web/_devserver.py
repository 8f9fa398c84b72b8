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
the one behind its in-process connection), with the two scans of every stored
promise it makes per invocation replaced by indexes
(:class:`resonate_web._core.sdk.IndexedState`, as on the embedded backend), so
what a request costs does not grow with the invocations stored. This module adds
what a network server needs around it: a clock that advances timers and leases, and delivery
of the state machine's outgoing messages by address -- ``poll://uni@{group}/{pid}``
to that process's stream, ``poll://any@{group}`` to one connected member of the
group (round robin; ``poll://any@{group}/{pid}`` prefers that member while it is
connected), held back while nobody is connected. When a stream drops, what was
queued for it, and every ``execute`` it was sent that nobody has picked up,
moves to another member at once, so a killed worker's work does not wait for the
state machine's 30 s retry.

On the wire it speaks the Resonate server's protocol, as every SDK validates it
(the TypeScript SDK checks each response field by field), and translates where
the state machine's own dialect differs (see :class:`Wire`): task versions
count acquisitions, records carry exactly the protocol's fields, an error's
``data`` is its message, and pushed messages carry a ``head``.

Schedules: the state machine only stores them; the dev server's clock fires
them as the Resonate server does (:class:`resonate_web._core.schedules.Ticker`): each
tick a root promise ``{schedule id}-{unix ms}`` with the schedule's param and
tags, sent to its target group.

State is in memory: restarting the dev server forgets everything. Use a
Resonate server (``resonate serve``) or PostgreSQL in production.
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
from resonate_base import PROTOCOL_VERSION

from resonate_web._core import sdk as _sdk
from resonate_web._core import search as _search
from resonate_web._core.flowtable import FlowBook
from resonate_web._core.schedules import Ticker
from resonate_web._core.sdk import (
    IndexedState,
    OutgoingMessage,
    ServerState,
    Task,
    extract_action_data,
    unwrap_request_envelope,
)
from resonate_web._gateway.contract import DEV_SERVER, EVENT_STREAM, EVENT_STREAM_HEADERS

logger = logging.getLogger("resonate_web.devserver")

#: What the server says it is in its ``/health``: gateways on it read this to explain
#: a 404 (the state is gone after a restart).

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
    """A parsed ``poll://`` delivery address.

    ``uni@{group}/{pid}`` is that process; ``any@{group}`` any member of the
    group; ``any@{group}/{pid}`` (the TypeScript SDK's own anycast address) any
    member, that process first while it is connected.
    """

    group: str
    pid: str | None  # None: any member of the group
    prefer: str | None = None

    @classmethod
    def parse(cls, address: str) -> Address | None:
        if not address.startswith(_SCHEME):
            return None
        mode, sep, rest = address.removeprefix(_SCHEME).partition("@")
        group, slash, pid = rest.partition("/")
        if not (sep and _name_ok(group)) or (slash and not _name_ok(pid)):
            return None
        if mode == "uni" and slash:
            return cls(group, pid)
        if mode == "any":
            return cls(group, None, pid or None)
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
        self.state = IndexedState()
        self.wire = Wire(self.state)
        #: Flow control's state (concurrency, rate, debounce) for every process.
        self.flow = FlowBook()
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
        #: Which ticks of the stored schedules are due (the state machine never fires them).
        self.schedules = Ticker()

    # ── the protocol ────────────────────────────────────────────────────────

    def apply(self, raw: bytes) -> tuple[int, bytes]:
        """Apply one request envelope; return the HTTP status and response envelope.

        Runs without awaiting, so on the event loop it is atomic: requests and
        ticks never interleave inside the state machine.
        """
        try:
            request = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            return 400, envelope(None, None, None, 400, f"invalid JSON request: {exc}")
        flat = unwrap_request_envelope(request)
        if not isinstance(flat, dict):
            flat = {}
        kind, corr_id = flat.get("kind"), flat.get("corrId")
        head = request.get("head") if isinstance(request, dict) else None
        version = head.get("version") if isinstance(head, dict) else None
        if kind == _sdk.FLOW_KIND:
            data = {k: v for k, v in flat.items() if k not in ("kind", "corrId")}
            try:
                answer = self.flow.apply(data, self._clock())
            except (KeyError, TypeError, ValueError) as exc:
                return 200, envelope(kind, corr_id, version, 400, f"invalid flow request: {exc}")
            return 200, envelope(kind, corr_id, version, 200, answer)
        try:
            self.wire.inbound(flat)
            now = self._clock()
            response = self.wire.answer(flat, now) or self.state.apply(now, flat)
        except ServerError as exc:
            self.state.outgoing = []
            return 200, envelope(kind, corr_id, version, exc.code, exc.message)
        except Exception as exc:  # a request the state machine cannot digest
            logger.exception("request %s failed", kind)
            self.state.outgoing = []
            return 200, envelope(kind, corr_id, version, 500, f"{type(exc).__name__}: {exc}")
        outgoing, self.state.outgoing = self.state.outgoing, []
        self._route(outgoing)
        status, data = self.wire.outbound(flat, response, corr_id=corr_id, version=version)
        return 200, envelope(kind, corr_id, version, status, data)

    def tick(self) -> None:
        """Advance time: expire promises, release lapsed leases, retry tasks, fire
        the schedules' due ticks."""
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
        self.fire_schedules(now)

    def fire_schedules(self, now: int) -> None:
        """Create the root promise of every due tick (oldest first; idempotent by id,
        and timed out from the start when its timeout has already passed)."""
        for tick in self.schedules.due(list(self.state.schedules.values()), now):
            request = {
                "kind": "promise.create",
                "corrId": None,
                "id": tick.promise_id,
                "timeoutAt": tick.timeout_at,
                "param": tick.param,
                "tags": tick.tags,
            }
            response = self.state.apply(now, request)
            outgoing, self.state.outgoing = self.state.outgoing, []
            self._route(outgoing)
            state = (response.get("promise") or {}).get("state")
            logger.info("schedule %s: tick %s (%s)", tick.schedule_id, tick.promise_id, state)

    # ── delivery ────────────────────────────────────────────────────────────

    def _route(self, outgoing: list[OutgoingMessage]) -> None:
        for out in outgoing:
            self.deliver(Message(out.address, self.wire.message(out.message)))

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
        if address.prefer is not None:
            stream = self._unicast_stream(address.group, address.prefer, avoid)
            if stream is not None:
                stream.queue.put_nowait(message)
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
        """Forget executes that were claimed or settled, and expired unicast backlog.

        A group nobody serves keeps its backlog until its tasks are done: the
        TypeScript SDK's durable timers, for one, target the group ``default``,
        and what settles them is the clock, not a member.
        """
        for members in self._streams.values():
            for stream in members:
                for tid, message in list(stream.delivered.items()):
                    if not self.is_current(message):
                        del stream.delivered[tid]
        for group, held in list(self._anycast_backlog.items()):
            for key, message in list(held.items()):
                if not self.is_current(message):
                    del held[key]
            if not held:
                del self._anycast_backlog[group]
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
            {"status": "ok", "server": DEV_SERVER, "streams": self.connected()}
        )

    async def _poll(self, request: web.Request) -> web.StreamResponse:
        group, pid = request.match_info["group"], request.match_info["pid"]
        if not (_name_ok(group) and _name_ok(pid)):
            raise web.HTTPBadRequest(text="a group and a pid are names without '/@: '")
        if self._closing:
            raise web.HTTPServiceUnavailable()
        response = web.StreamResponse(
            headers={"Content-Type": EVENT_STREAM, **EVENT_STREAM_HEADERS}
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


# ── the wire: the Resonate protocol at the state machine's edge ─────────────

#: Kinds of the protocol that the state machine does not implement.
NOT_IMPLEMENTED = frozenset(
    {
        "promise.register_callback",
        "task.halt",
        "task.continue",
        "task.search",
    }
)
#: The states a client may settle a promise with (``rejected_timedout`` is the server's).
SETTLE_STATES = frozenset({"resolved", "rejected", "rejected_canceled"})
#: Requests a task's holder makes, fenced by the version its acquisition returned.
_HOLDER_KINDS = frozenset({"task.fence", "task.fulfill", "task.release", "task.suspend"})
_STATUS_TEXT = {
    400: "bad request",
    404: "not found",
    409: "conflict",
    422: "unprocessable entity",
    501: "not implemented",
}
_PROMISE_FIELDS = ("id", "state", "param", "value", "tags", "timeoutAt", "createdAt", "settledAt")
_SCHEDULE_FIELDS = (
    "id",
    "cron",
    "promiseId",
    "promiseTimeout",
    "promiseParam",
    "promiseTags",
    "createdAt",
    "nextRunAt",
    "lastRunAt",
)
_VALUE_FIELDS = ("param", "value", "promiseParam")


class Wire:
    """Requests, responses and messages: the protocol outside, the state machine's
    dialect inside.

    Versions. On a Resonate server a task's version counts its acquisitions: an
    ``execute`` names the version to acquire at, ``task.acquire`` refuses any
    other (409) and answers with the task one version on, and that version
    fences every later request of the holder (``task.fence``, ``.suspend``,
    ``.fulfill``, ``.release``, ``.heartbeat``). The state machine counts
    returns to ``pending`` instead (a release, a lapsed lease, a resume),
    leaves the version alone on acquire and checks it only on fence and
    heartbeat. The two counts agree while a task is pending, and the protocol's
    is one more while it is acquired or suspended; so the version is
    translated on the way in and out, and checked here where the state machine
    does not.

    Shapes. Records carry exactly the protocol's fields: a value (``param``,
    ``value``) is an object, never ``null``; an absent time or pid is left
    out, not ``null``; a task record counts its ``resumes``. A create answers
    200 whether new or not. An error's ``data`` is its message, a string. A
    fence answers with the nested response of its action. Pushed messages carry
    a ``head``. ``task.get`` and ``promise.search`` (by state and tags, newest
    first) are answered here; the other kinds the state machine lacks answer 501.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state

    # ── in ──────────────────────────────────────────────────────────────────

    def inbound(self, request: dict[str, Any]) -> None:
        """Check a flat request and rewrite it into the state machine's terms.

        Raises :class:`ServerError` for a request the server refuses outright.
        """
        kind = request.get("kind")
        if kind in NOT_IMPLEMENTED:
            raise ServerError(501, f"{kind} is not implemented by the dev server")
        action = request.get("action")
        if kind == "promise.settle":
            _check_settle(request)
        elif kind == "task.fulfill" or (
            kind == "task.fence"
            and isinstance(action, dict)
            and action.get("kind") == "promise.settle"
        ):
            _check_settle(extract_action_data(action))
        if kind == "task.acquire":
            task = self._task(request.get("id"))
            version = request.get("version")
            if task is not None and task.state == "pending" and not _same(version, task.version):
                raise ServerError(409, _mismatch(task, version, task.version))
        elif kind in _HOLDER_KINDS:
            task = self._task(request.get("id"))
            if task is not None and task.state == "acquired":
                version = request.get("version")
                if not _same(version, task.version + 1):
                    raise ServerError(409, _mismatch(task, version, task.version + 1))
                request["version"] = task.version
        elif kind == "task.heartbeat" and isinstance(request.get("tasks"), list):
            request["tasks"] = [_held_ref(ref) for ref in request["tasks"]]

    def answer(self, request: dict[str, Any], now: int) -> dict[str, Any] | None:
        """The response to a read the state machine lacks (``task.get``,
        ``promise.search``), else ``None``."""
        if request.get("kind") == "promise.search":
            records = (p.to_record() for p in self.state.promises.values())
            page = _search.search_records(records, request)
            page["promises"] = [promise_record(p) for p in page["promises"]]
            return {
                "kind": "promise.search",
                "corrId": request.get("corrId"),
                "status": 200,
                **page,
            }
        if request.get("kind") != "task.get":
            return None
        reply = {"kind": "task.get", "corrId": request.get("corrId")}
        task = self._task(request.get("id"))
        if task is None:
            return {**reply, "status": 404, "error": f"task {request.get('id')} not found"}
        record = task.to_record()
        promise = self.state.promises.get(task.id)
        if promise is not None and (promise.state != "pending" or now >= promise.timeout_at):
            record = {"id": task.id, "state": "fulfilled", "version": task.version}
        return {**reply, "status": 200, "task": record}

    # ── out ─────────────────────────────────────────────────────────────────

    def outbound(
        self, request: dict[str, Any], response: dict[str, Any], *, corr_id: Any, version: Any
    ) -> tuple[int, Any]:
        """The protocol's ``(status, data)`` for the state machine's flat response."""
        status = response.get("status", 200)
        if status == 201:  # the state machine's "created"; the protocol answers 200 either way
            status = 200
        if status not in (200, 300):
            error = response.get("error")
            return status, error if isinstance(error, str) and error else _status_text(status)
        data: dict[str, Any] = {}
        for key, value in response.items():
            if key in ("kind", "corrId", "status", "redirect", "error"):
                continue
            if key == "promise":
                data[key] = promise_record(value)
            elif key == "task":
                data[key] = self.task_record(value)
            elif key == "preload":
                data[key] = [promise_record(p) for p in value or []]
            elif key == "schedule":
                data[key] = schedule_record(value)
            elif key == "schedules":
                data[key] = [schedule_record(s) for s in value or []]
            elif key == "action":
                data[key] = _fence_action(request, value, corr_id, version)
            elif value is not None:
                data[key] = value
        return status, data

    def task_record(self, record: Any) -> Any:
        if not isinstance(record, dict):
            return record
        state, version = record.get("state"), record.get("version")
        if state in ("acquired", "suspended") and isinstance(version, int):
            version += 1
        task = self._task(record.get("id"))
        out = {
            "id": record.get("id"),
            "state": state,
            "version": version,
            "resumes": len(task.resumes) if task is not None else 0,
        }
        for key in ("ttl", "pid"):
            if record.get(key) is not None:
                out[key] = record[key]
        return out

    def message(self, body: Any) -> Any:
        """A pushed message as the protocol has it: ``{kind, head, data}``."""
        if not isinstance(body, dict):
            return body
        data = body.get("data")
        if body.get("kind") == "unblock" and isinstance(data, dict):
            data = {**data, "promise": promise_record(data.get("promise"))}
        return {"kind": body.get("kind"), "head": {}, "data": data}

    def _task(self, id: Any) -> Task | None:
        return self.state.tasks.get(id) if isinstance(id, str) else None


def promise_record(record: Any) -> Any:
    """A promise record with the protocol's fields, no ``null`` in place of a value."""
    if not isinstance(record, dict):
        return record
    return _record(record, _PROMISE_FIELDS)


def schedule_record(record: Any) -> Any:
    if not isinstance(record, dict):
        return record
    return _record(record, _SCHEDULE_FIELDS)


def _record(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in fields:
        value = record.get(key)
        if key in _VALUE_FIELDS:
            out[key] = _value(value)
        elif value is not None:
            out[key] = value
    return out


def _value(value: Any) -> Any:
    """``{headers?, data?}``: ``{}`` for none, and no member that is ``null``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value


def _fence_action(request: dict[str, Any], action: Any, corr_id: Any, version: Any) -> Any:
    """The response of a fenced action, nested as a whole response envelope."""
    inner = action.get("data") if isinstance(action, dict) else None
    promise = inner.get("promise") if isinstance(inner, dict) else None
    sent = request.get("action")
    kind = sent.get("kind") if isinstance(sent, dict) else None
    status = 200 if promise is not None else 404
    return {
        "kind": kind,
        "head": {"corrId": corr_id, "status": status, "version": _version(version)},
        "data": {"promise": promise_record(promise)} if promise is not None else "not found",
    }


def _check_settle(settle: Any) -> None:
    state = settle.get("state") if isinstance(settle, dict) else None
    if state not in SETTLE_STATES:
        raise ServerError(
            400, f"invalid state {state!r}: one of {', '.join(sorted(SETTLE_STATES))}"
        )


def _held_ref(ref: Any) -> Any:
    """A heartbeat's ``{id, version}`` at the state machine's version."""
    if isinstance(ref, dict) and _is_int(ref.get("version")):
        return {**ref, "version": ref["version"] - 1}
    return ref


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(version: Any, expected: int) -> bool:
    return _is_int(version) and version == expected


def _mismatch(task: Task, sent: Any, expected: int) -> str:
    return f"version mismatch: task {task.id} is {task.state} at version {expected}, not {sent!r}"


def _status_text(status: int) -> str:
    return _STATUS_TEXT.get(status, "error")


def _version(version: Any) -> str:
    return version if isinstance(version, str) else PROTOCOL_VERSION


def envelope(kind: Any, corr_id: Any, version: Any, status: int, data: Any) -> bytes:
    """A response envelope; ``head.version`` echoes the request's."""
    head = {"corrId": corr_id, "status": status, "version": _version(version)}
    return msgspec.json.encode({"kind": kind, "head": head, "data": data})


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
