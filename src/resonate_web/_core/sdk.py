"""The one seam onto resonate-sdk's internals.

resonate-web uses the SDK's public API (``Resonate``, ``Context``, the retry
policies, the errors) wherever it has one. What it needs beyond that -- a raw
promise read that never unpickles, the settle notification shared by handles,
the worker's drain, the embedded backend's routing, the dev server's state
machine, the formats the SDK stores -- is reached here and nowhere else, one
named function per use. ``tests/test_sdk_seam.py`` holds a canary per
function: an SDK release that renames what one relies on fails the test that
names it, instead of breaking (or silently degrading) far from here.

Nothing outside this module touches an underscore name of the SDK; a test
enforces it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import functools
import inspect
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from importlib import metadata
from typing import Any

import aiohttp
import msgspec
from resonate.connections import HttpConnection, LocalConnection, SSEConnection
from resonate.connections.local import (
    DurablePromise,
    OutgoingMessage,
    ServerState,
    Task,
    extract_action_data,
    unwrap_request_envelope,
    wrap_response_envelope,
)
from resonate.context import Context
from resonate.durable import DurableFunction
from resonate.error import ConnectorError, DecodingError, PlatformError, ServerError
from resonate.handle import PromiseResult, ResonateHandle
from resonate.heartbeat import AsyncHeartbeat
from resonate.resonate import Resonate
from resonate.send import parse_promise
from resonate.transport import UnblockMsg
from resonate.types import PromiseCreateReq, PromiseRecord, Value

from resonate_web._core import flowtable, httppool
from resonate_web._core import search as _search

__all__ = [
    "EXTERNAL_TAG",
    "PICKLE_KEY",
    "SDK_RANGE",
    "IndexedState",
    "LeaseKeeper",
    "OutgoingMessage",
    "ServerState",
    "Task",
    "TimelyState",
    "attach_stream",
    "client_pid",
    "context_now",
    "create_promise",
    "decode_value",
    "embedded_activity",
    "embedded_connection",
    "embedded_deadlines",
    "embedded_stored",
    "event_stream",
    "extract_action_data",
    "function_stats",
    "held_tasks",
    "http_connection",
    "is_workflow",
    "name_steps",
    "note_failure",
    "postgres_connection",
    "prune_embedded",
    "read_promise",
    "release_task",
    "report_failures",
    "resolve_target",
    "running_tasks",
    "sdk_version",
    "sdk_version_problem",
    "settled",
    "stop_listening",
    "unwrap_request_envelope",
    "wrap_response_envelope",
]

logger = logging.getLogger("resonate_web")

#: The resonate-sdk releases this version of resonate-web is tested against.
SDK_RANGE = (">=0.8.1", "<0.9")
_SDK_MIN = (0, 8, 1)
_SDK_BELOW = (0, 9)

#: Where the SDK's codec keeps a pickled exception in a rejection's value.
PICKLE_KEY = "__py_pickle"
#: The tag the SDK puts on a ``ctx.promise()`` that someone outside settles.
EXTERNAL_TAG = "resonate:external"


# ── version ───────────────────────────────────────────────────────────────


def sdk_version() -> str:
    """The installed resonate-sdk version."""
    return metadata.version("resonate-sdk")


def _release(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece else ""
        if not digits:
            break
        parts.append(int(digits))
        if digits != piece:
            break
    return tuple(parts)


def sdk_version_problem(version: str | None = None) -> str | None:
    """Why the installed SDK is outside the tested range, or ``None`` when it is in it."""
    version = sdk_version() if version is None else version
    release = _release(version)
    if _SDK_MIN <= release < _SDK_BELOW:
        return None
    return (
        f"resonate-sdk {version} is installed; this resonate-web is tested with "
        f"resonate-sdk{','.join(SDK_RANGE)} (pip install 'resonate-sdk{','.join(SDK_RANGE)}')"
    )


# ── reading promises as data ──────────────────────────────────────────────


async def read_promise(client: Resonate, id: str) -> PromiseRecord:
    """Promise ``id`` as the backend holds it, values still encoded.

    The public ``client.promises.get`` decodes both values and fails on one it
    cannot decode; the gateway decodes each value itself and tolerates that.
    Raises the SDK's ``ServerError`` (404 for an unknown id) or
    ``ConnectorError``.
    """
    record: PromiseRecord = await client.promises.sender.promise_get(id)
    return record


def decode_value(client: Resonate, value: Any) -> Any:
    """A stored value decoded to JSON data (base64, decryption, JSON; never pickle)."""
    return client.promises.codec.decode(value)


async def settled(handle: ResonateHandle[Any]) -> PromiseResult:
    """Wait for the settle notification every handle to one id shares.

    ``handle.result()`` would decode a rejection by unpickling it; this returns
    the state and the still-encoded value instead.
    """
    return await handle._sub.wait()


async def create_promise(
    client: Resonate, id: str, timeout_at: int, param: Value, tags: dict[str, str]
) -> PromiseRecord:
    """Create promise ``id`` with ``param`` exactly as given (already encoded).

    The public ``client.promises.create`` encodes the param it is handed; a
    schedule's tick passes on the param the backend stored for it, as the
    Resonate server does. Idempotent by id (the backend answers with the
    existing promise).
    """
    record: PromiseRecord = await client.promises.sender.promise_create(
        PromiseCreateReq(id=id, timeout_at=timeout_at, param=param, tags=tags)
    )
    return record


_LISTEN = '{"kind":"promise.register_listener"'


class PushedSettles:
    """The settled records the backend pushes (``unblock`` messages), kept while
    somebody in this process waits on their id.

    A waiter woken by the SDK's settle notification gets the state and value,
    not the record (when it settled): this keeps the record the same message
    carried, so the waiter need not read it back.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, int] = {}
        self._records: dict[str, PromiseRecord] = {}

    def attach(self, client: Resonate) -> None:
        """Listen to ``client``'s pushed messages, from every source it has, and to the
        answers of its listener registrations: a promise that settled before its
        listener was registered is answered there, settled, and never pushed."""
        client._transport.recv(self._on_message)
        network: Any = client._network
        network.pushed = self

    def _on_message(self, message: Any) -> None:
        if isinstance(message, UnblockMsg):
            self._keep(message.data.promise)

    def _keep(self, record: PromiseRecord) -> None:
        if record.id in self._waiting and record.state != "pending":
            self._records[record.id] = record

    def listened(self, request: str, answer: str) -> None:
        """Keep the settled record a ``promise.register_listener`` answered, if
        somebody here waits on it."""
        if not self._waiting or not request.startswith(_LISTEN):
            return
        try:
            envelope = msgspec.json.decode(answer)
            self._keep(parse_promise(envelope.get("data")))
        except (DecodingError, msgspec.DecodeError, AttributeError):
            return

    @contextlib.contextmanager
    def waiting(self, id: str) -> Iterator[None]:
        """Keep what is pushed for ``id`` while within."""
        self._waiting[id] = self._waiting.get(id, 0) + 1
        try:
            yield
        finally:
            left = self._waiting[id] - 1
            if left:
                self._waiting[id] = left
            else:
                del self._waiting[id]
                self._records.pop(id, None)

    def get(self, id: str) -> PromiseRecord | None:
        """The settled record pushed for ``id`` (values still encoded), if one was."""
        return self._records.get(id)


# ── identity and execution state ──────────────────────────────────────────


def client_pid(client: Resonate) -> str:
    """The process id the client leases tasks under."""
    return str(client._pid)


def resolve_target(client: Resonate, group: str | None) -> str:
    """The address ``group`` resolves to (``poll://any@workers``), as the client's
    ``rpc`` and ``schedule`` stamp it on ``resonate:target``; ``None``: its own group."""
    return str(client._resolve_target(group))


def is_workflow(ctx: Context) -> bool:
    """Whether this execution performed a durable step (then the SDK never retries it)."""
    return bool(ctx._state.workflow)


# ── draining a worker ─────────────────────────────────────────────────────


async def stop_listening(client: Resonate) -> None:
    """Refuse new ``execute`` messages and close every push source.

    The request connection stays open: running tasks still complete, suspend or
    release through it.
    """
    client._runtime.stopping = True
    network = client._network
    for conn in list(client._connections):
        if conn is not network:
            try:
                await conn.stop()
            except Exception as exc:  # pragma: no cover - best effort
                logger.warning("stopping a connection failed: %s", exc)


def running_tasks(client: Resonate) -> set[asyncio.Task[Any]]:
    """The client's background tasks that have not finished."""
    return {t for t in client._runtime.bg_tasks if not t.done()}


def held_tasks(client: Resonate) -> dict[str, int]:
    """Tasks this process holds a lease on: ``{task id: version}``."""
    return dict(getattr(client._heartbeat, "active_tasks", {}) or {})


async def release_task(client: Resonate, task_id: str, version: int) -> None:
    """Give task ``task_id`` back to the backend, so another worker takes it at once."""
    await client._sender.task_release(task_id, version)


# ── the networks: tagging invocations, answering searches ─────────────────


async def _edge(
    send: Callable[[str, dict[str, str] | None], Awaitable[Any]],
    req: str,
    headers: dict[str, str] | None,
    *,
    remote: bool = True,
    pushed: PushedSettles | None = None,
) -> str:
    """``send`` ``req`` with root creates tagged; a launch's create keeps its answer;
    a listener's registration tells ``pushed`` what it answered.

    To a ``remote`` backend, a launch's create is dropped once the launch is
    abandoned: the SDK's connection retries a request forever while the backend
    is down, and a create sent after the request answered 503 would start an
    invocation nobody knows of (and its retry, without an id, a second one).
    """
    tagged, launch = _search.tag_root_create(req)
    if launch is None:
        answer = str(await send(tagged, headers))
        if pushed is not None:
            pushed.listened(tagged, answer)
        return answer
    if not remote:
        launch.answer = str(await send(tagged, headers))
        return launch.answer
    if launch.abandoned:
        raise ConnectorError(RuntimeError(f"the start of {launch.id} was abandoned"))
    # The abandon cancels the task sending the create (the SDK's, awaiting this), and
    # the cancellation is turned back into the connection error it stands for.
    sending = asyncio.current_task()
    launch.sending = sending
    try:
        answer = await send(tagged, headers)
    except asyncio.CancelledError:
        if not launch.abandoned or sending is None or sending.uncancel() > 0:
            raise  # canceled by somebody else too
        raise ConnectorError(RuntimeError(f"the start of {launch.id} was abandoned")) from None
    finally:
        launch.sending = None
    launch.answer = str(answer)
    return launch.answer


def launched_record(launch: _search.Launch) -> tuple[PromiseRecord | None, bool]:
    """What the backend answered ``launch``'s create: the stored record (values still
    encoded) and whether this launch created it; ``(None, False)`` when the answer
    did not come through here or carries no record (a conflict)."""
    if launch.answer is None:
        return None, False
    envelope = msgspec.json.decode(launch.answer)
    head = envelope.get("head") if isinstance(envelope, dict) else None
    status = head.get("status") if isinstance(head, dict) else None
    if not isinstance(status, int) or not 200 <= status < 300:
        return None, False
    try:
        record = parse_promise(envelope.get("data"))
    except DecodingError:
        return None, False
    if record.id != launch.id:
        return None, False
    return record, record.tags.get(_search.LAUNCH_TAG) == launch.nonce


def _search_reply(request: str, page: dict[str, Any]) -> str:
    head = json.loads(request).get("head") or {}
    flat = {"kind": "promise.search", "corrId": head.get("corrId"), "status": 200, **page}
    return json.dumps(wrap_response_envelope(flat), separators=(",", ":"))


#: The request kind of flow control's state (see :mod:`resonate_web._core.flowtable`),
#: answered by resonate-web's backends: the embedded one, the dev server, Postgres.
FLOW_KIND = "resonate-web.flow"


def is_flow(request: str) -> bool:
    return request.startswith('{"kind":"resonate-web.flow"')


def _flow_reply(request: str, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    envelope = json.loads(request)
    head = envelope.get("head") or {}
    flat: dict[str, Any] = {"kind": FLOW_KIND, "corrId": head.get("corrId")}
    try:
        flat.update(status=200, **answer(envelope.get("data") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        flat.update(status=400, error=f"invalid flow request: {exc}")
    return json.dumps(wrap_response_envelope(flat), separators=(",", ":"))


class FlowUnsupported(Exception):
    """The backend keeps no flow-control state (a Resonate server other than
    ``resonate-web dev``)."""


async def flow_call(client: Resonate, request: dict[str, Any]) -> dict[str, Any]:
    """One flow-control operation on the state the backend keeps for every process."""
    try:
        _, data = await client._sender._send_envelope(FLOW_KIND, request, allow_409=False)
    except ServerError as exc:
        if exc.code in (400, 404, 405, 501) and "invalid flow request" not in str(exc):
            raise FlowUnsupported(str(exc)) from None
        raise
    if not isinstance(data, dict):
        raise ServerError(500, f"unexpected flow answer: {data!r}")
    return data


class _Awaiters(set[str]):
    """A promise's ``awaiters`` (the tasks waiting on it), indexed the other way
    round in :attr:`IndexedState.awaited_by` as tasks are added and removed."""

    def __init__(self, state: IndexedState, promise_id: str, tasks: Iterable[str]) -> None:
        super().__init__()
        self._state = state
        self._promise_id = promise_id
        for task_id in tasks:
            self.add(task_id)

    def add(self, task_id: str) -> None:
        super().add(task_id)
        self._state.awaited_by.setdefault(task_id, set()).add(self._promise_id)

    def discard(self, task_id: object) -> None:
        super().discard(task_id)
        awaited = self._state.awaited_by.get(str(task_id))
        if awaited is not None:
            awaited.discard(self._promise_id)
            if not awaited:
                del self._state.awaited_by[str(task_id)]

    def remove(self, task_id: object) -> None:
        if task_id not in self:
            raise KeyError(task_id)
        self.discard(task_id)

    def clear(self) -> None:
        for task_id in list(self):
            self.discard(task_id)


class _Promises(dict[str, DurablePromise]):
    """The state machine's promises, indexed by branch and by awaiting task."""

    def __init__(self, state: IndexedState) -> None:
        super().__init__()
        self._state = state

    def __setitem__(self, id: str, promise: DurablePromise) -> None:
        self._forget(id)
        promise.awaiters = _Awaiters(self._state, id, promise.awaiters)
        super().__setitem__(id, promise)
        if promise.tags.get("resonate:origin") == id:
            self._state.roots += 1
        branch = promise.tags.get("resonate:branch")
        if branch is not None:
            self._state.branches.setdefault(branch, {})[id] = None

    def __delitem__(self, id: str) -> None:
        self._forget(id)
        super().__delitem__(id)

    def pop(self, id: str, *default: Any) -> Any:
        self._forget(id)
        return super().pop(id, *default)

    def _forget(self, id: str) -> None:
        promise = self.get(id)
        if promise is None:
            return
        promise.awaiters.clear()
        if promise.tags.get("resonate:origin") == id:
            self._state.roots -= 1
        branch = self._state.branches.get(promise.tags.get("resonate:branch", ""))
        if branch is not None:
            branch.pop(id, None)
            if not branch:
                del self._state.branches[promise.tags["resonate:branch"]]


_FOREVER = (1 << 63) - 1


def _timed_out(promise_id: str) -> dict[str, Any]:
    """The value of a promise that timed out: the error the SDK raises where it is
    awaited (an ``ApplicationError`` with this message)."""
    message = f"promise {promise_id} timed out: nobody settled it before its timeout"
    data = base64.b64encode(json.dumps({"message": message}).encode()).decode("ascii")
    return {"headers": {}, "data": data}


class TimelyState(ServerState):
    """The SDK's in-process state machine, timing out what the Resonate server and
    resonate-pg time out.

    Its own times out only promises that carry a target: a ``ctx.promise(timeout=...)``
    (no target) would wait forever. And a promise it times out is stored with a
    ``null`` value, which the SDK's own parser refuses, so the push that should
    wake its waiters is dropped (``Expected object, got null``). Here every promise
    with a deadline times out, and a settled promise's value is always an object.
    The dev server and the embedded backend both run on this.
    """

    def promise_create(self, now: int, corr_id: Any, req: Any) -> dict[str, Any]:
        response: dict[str, Any] = super().promise_create(now, corr_id, req)
        record = response.get("promise")
        if not isinstance(record, dict):
            return response
        promise = self.promises.get(str(record.get("id")))
        if promise is None:
            return response
        if response.get("status") == 201 and promise.timeout_at < _FOREVER:
            self.set_p_timeout(promise.id, promise.timeout_at)
        if record.get("state") != "pending" and record.get("value") is None:
            self._valued(promise.id)
            response["promise"] = {**record, "value": promise.value}
        return response

    def task_create(self, now: int, corr_id: Any, req: Any) -> dict[str, Any]:
        response: dict[str, Any] = super().task_create(now, corr_id, req)
        record = response.get("promise")
        if isinstance(record, dict) and record.get("state") != "pending":
            promise = self.promises.get(str(record.get("id")))
            if promise is not None and record.get("value") is None:
                self._valued(promise.id)
                response["promise"] = {**record, "value": promise.value}
        return response

    def _valued(self, promise_id: str) -> None:
        promise = self.promises.get(promise_id)
        if promise is not None and promise.state != "pending" and promise.value is None:
            promise.value = _timed_out(promise_id) if promise.state == "rejected_timedout" else {}

    def enqueue_settle(self, promise_id: str) -> None:
        self._valued(promise_id)
        super().enqueue_settle(promise_id)

    def notify_subscribers(self, promise_id: str) -> None:
        self._valued(promise_id)
        super().notify_subscribers(promise_id)


class IndexedState(TimelyState):
    """The SDK's in-process state machine, without its two scans of every promise.

    On each settle the SDK walks every promise to drop the settled task from
    their awaiters, and on each task acquisition it walks every promise for the
    task's branch: the cost of an invocation grows with all that was ever
    stored (measured: ~0.7 µs per stored promise, twice per invocation). Here
    both are lookups in an index kept as promises and awaiters change; the
    state machine's behaviour is the SDK's own (``tests/test_sdk_seam.py``
    replays the same requests through both and compares).
    """

    def __init__(self) -> None:
        super().__init__()
        #: Branch tag -> ids of the promises on it, in creation order.
        self.branches: dict[str, dict[str, None]] = {}
        #: Task id -> ids of the promises it awaits.
        self.awaited_by: dict[str, set[str]] = {}
        #: How many root promises (invocations) it holds.
        self.roots = 0
        self.promises = _Promises(self)

    def enqueue_settle(self, promise_id: str) -> None:
        self._valued(promise_id)
        task = self.tasks.get(promise_id)
        if task is None or task.state == "fulfilled":
            super().enqueue_settle(promise_id)  # no scan on these paths
            return
        # The SDK's, with its loop over every promise replaced by the index.
        task.state = "fulfilled"
        task.pid = None
        task.ttl = None
        task.resumes.clear()
        self.del_t_timeout(promise_id)
        for awaited in list(self.awaited_by.get(promise_id, ())):
            promise = self.promises.get(awaited)
            if promise is not None:
                promise.awaiters.discard(promise_id)

    def preload(self, promise_id: str) -> list[dict[str, Any]]:
        promise = self.promises.get(promise_id)
        branch = promise.tags.get("resonate:branch") if promise is not None else None
        if branch is None:
            return []
        return [
            self.promises[other].to_record()
            for other in self.branches.get(branch, {})
            if other != promise_id
        ]


class _EmbeddedConnection(LocalConnection):
    """The SDK's in-process backend, delivering only what is addressed to this process,
    tagging the invocations this process starts and answering promise searches.

    The SDK's ``LocalConnection`` hands every message to every receiver, since
    in one process there is nobody else to route to. But a function dispatched
    to another group (``expose_remote``, or ``mode="dispatch"``) has no code
    here: delivered anyway, it would fail to run, be released and be
    redelivered in a tight loop. Like a real server, this keeps such a task
    pending for a worker of its group, which on the embedded backend never
    comes (``GET /functions`` says so: its mode is ``dispatch``).

    Its state machine is :class:`IndexedState`, whose cost per invocation does
    not grow with the invocations it holds.
    """

    def __init__(self, *, pid: str, group: str, **timing: Any) -> None:
        super().__init__(pid=pid, group=group, **timing)
        self.state = IndexedState()
        #: Requests being answered now (a virtual clock waits for them).
        self.sending = 0
        #: Flow control's state (concurrency, rate, debounce), in this process.
        self.flow = flowtable.FlowBook()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        self.sending += 1
        try:
            if is_flow(req):
                # Real time, not the clock a test may run the backend on: a virtual
                # clock stands still while code runs, and waiting here is running.
                now = time.time_ns() // 1_000_000
                return _flow_reply(req, lambda data: self.flow.apply(data, now))
            if _search.is_search(req):
                query = json.loads(req).get("data") or {}
                records = (p.to_record() for p in self.state.promises.values())
                return _search_reply(req, _search.search_records(records, query))
            pushed = getattr(self, "pushed", None)
            return await _edge(super().send, req, headers, remote=False, pushed=pushed)
        finally:
            self.sending -= 1

    def _dispatch_messages(self, messages: list[OutgoingMessage]) -> None:
        own = self.resolve_target(self._group)
        super()._dispatch_messages(_addressed_to(messages, own))


def _addressed_to(messages: Iterable[OutgoingMessage], own: str) -> list[OutgoingMessage]:
    return [m for m in messages if m.address == own or m.address.startswith("local://uni@")]


def prune_embedded(client: Resonate, *, settled_before: int, keep: int) -> int:
    """Forget settled root invocations of the embedded backend, with every step of
    theirs: those settled before ``settled_before`` (unix ms), and all but the
    ``keep`` most recently settled. Returns how many invocations were forgotten.

    The SDK's in-process state machine keeps every promise and task forever and
    scans them on each tick; this bounds what it holds.
    """
    network = client._network
    if not isinstance(network, LocalConnection):
        return 0
    state = network.state
    settled = sorted(
        (
            (p.settled_at or 0, p.id)
            for p in state.promises.values()
            if p.state != "pending" and p.tags.get("resonate:origin") == p.id
        ),
        reverse=True,
    )
    doomed = {id for n, (at, id) in enumerate(settled) if n >= keep or at < settled_before}
    if not doomed:
        return 0
    lineage = {
        p.id
        for p in state.promises.values()
        if p.tags.get("resonate:origin", p.tags.get(_search.FAILURE_TAG, p.id)) in doomed
    } | doomed
    for id in lineage:
        state.promises.pop(id, None)
        state.tasks.pop(id, None)
    state.p_timeouts[:] = [t for t in state.p_timeouts if t.id not in lineage]
    state.t_timeouts[:] = [t for t in state.t_timeouts if t.id not in lineage]
    return len(doomed)


def embedded_size(client: Resonate) -> int:
    """How many invocations (root promises, settled or not) the embedded backend holds;
    0 on any other backend."""
    network = client._network
    if not isinstance(network, LocalConnection) or not isinstance(network.state, IndexedState):
        return 0
    return network.state.roots


def embedded_stored(client: Resonate, id: str) -> object | None:
    """The embedded backend's settled promise ``id`` as an identity token, or ``None``
    (not stored, still pending, or another backend). Safe from any thread: one dict
    lookup.

    The backend replaces a promise's object on every change and drops it when it
    forgets the invocation, so a token that is still the stored one means the
    promise is unchanged since the token was taken.
    """
    network = client._network
    if not isinstance(network, _EmbeddedConnection):
        return None
    stored = network.state.promises.get(id)
    return None if stored is None or stored.state == "pending" else stored


def embedded_connection(
    *,
    pid: str,
    group: str,
    clock: Callable[[], int] | None = None,
    sweep: Callable[[float], Awaitable[None]] | None = None,
) -> LocalConnection:
    """The embedded backend for one client (see :class:`_EmbeddedConnection`).

    ``clock`` (unix ms) is its time; ``sweep`` (a sleeper) paces its sweep of
    due deadlines, which by default runs every second of real time.
    """
    timing: dict[str, Any] = {}
    if clock is not None:
        timing["clock"] = clock
    if sweep is not None:
        timing["sleeper"] = sweep
    return _EmbeddedConnection(pid=pid, group=group, **timing)


def embedded_activity(client: Resonate) -> tuple[int, int]:
    """What the embedded backend is doing now: requests being answered, and message
    deliveries not yet done. ``(0, 0)`` on any other backend."""
    network = client._network
    if not isinstance(network, _EmbeddedConnection):
        return (0, 0)
    pending = sum(1 for task in network._dispatch_tasks if not task.done())
    return (network.sending, pending)


def embedded_deadlines(client: Resonate) -> list[tuple[int, str, str, bool]]:
    """The embedded backend's pending promise timeouts: ``(unix ms, promise id, id of
    its invocation, whether someone outside settles it)``, soonest first (durable
    timers, ``ctx.promise()``, invocations' own timeouts). Empty on any other backend."""
    network = client._network
    if not isinstance(network, LocalConnection):
        return []
    state = network.state
    found = []
    for timeout in list(state.p_timeouts):
        promise = state.promises.get(timeout.id)
        if promise is not None and promise.state == "pending":
            origin = promise.tags.get("resonate:origin", timeout.id)
            found.append((timeout.timeout, timeout.id, origin, EXTERNAL_TAG in promise.tags))
    return sorted(found)


def context_now(ctx: Context) -> int:
    """The time (unix ms) by the clock ``ctx``'s client runs on."""
    clock: Callable[[], int] = ctx._state.clock
    return clock()


class _HttpConnection(HttpConnection):
    """The SDK's HTTP connection, tagging the invocations this process starts (the
    server answers searches itself), and sending on :class:`httppool.Pool` rather
    than aiohttp: the same requests, retries, backoff and stop as the SDK's, for a
    third of the CPU per call."""

    _pool: httppool.Pool | None = None

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        return await _edge(self._post, req, headers, pushed=getattr(self, "pushed", None))

    async def _post(self, req: str, headers: dict[str, str] | None = None) -> str:
        # The SDK's HttpConnection.send, on the pool: connection failures are
        # retried with the backoff (which the gateway's watch hears), until stop.
        base = dict(headers or {})
        base.setdefault("Content-Type", "application/json")
        sent = self._auth_headers(base)
        body = req.encode()
        attempt = 0
        while True:
            if self._stopped:
                raise ConnectorError(RuntimeError("network has been stopped"))
            if self._pool is None:
                self._pool = httppool.Pool(self._url, limit=self._conn_limit)
            try:
                _, answer = await self._pool.post(body, sent)
            except (OSError, TimeoutError) as exc:
                if not self._running:
                    raise ConnectorError(exc) from exc
                delay = self._backoff.delay(attempt)
                logger.warning("HTTP send failed, retrying (backoff=%ss): %s", delay, exc)
                await self._sleep_or_stop(delay)
                if not self._running:
                    raise ConnectorError(exc) from exc
                attempt += 1
                continue
            return answer.decode("utf-8", errors="replace")

    async def stop(self) -> None:
        await super().stop()
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def http_connection(url: str, *, auth: str | None, backoff: Any) -> HttpConnection:
    return _HttpConnection(url, auth=auth, backoff=backoff)


def _explain_timeouts(raw: str) -> str:
    """``raw`` (a response or a pushed message), with the empty value of every promise
    record in it that timed out replaced by the error :func:`_timed_out` names.

    resonate-pg stores a timed-out promise with no value, which the SDK raises where
    it is awaited as ``unknown error: null``.
    """
    if '"rejected_timedout"' not in raw:
        return raw

    def fill(node: Any) -> Any:
        if isinstance(node, list):
            return [fill(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: fill(value) for key, value in node.items()}
        value = node.get("value")
        empty = value is None or (isinstance(value, dict) and value.get("data") is None)
        if node.get("state") == "rejected_timedout" and empty and isinstance(node.get("id"), str):
            node["value"] = _timed_out(node["id"])
        return node

    return json.dumps(fill(json.loads(raw)), separators=(",", ":"))


#: Flow control's state on Postgres: a row per function, locked for each operation.
#: Created on first use, in a schema of its own beside resonate-pg's.
_FLOW_LOCK = "SELECT pg_advisory_xact_lock(hashtext('resonate_web.flow'))"
_FLOW_SCHEMA = "CREATE SCHEMA IF NOT EXISTS resonate_web"
_FLOW_TABLE = (
    "CREATE TABLE IF NOT EXISTS resonate_web.flow "
    "(fn text PRIMARY KEY, state jsonb NOT NULL DEFAULT '{}'::jsonb)"
)
_FLOW_ROW = "INSERT INTO resonate_web.flow (fn) VALUES (%s) ON CONFLICT (fn) DO NOTHING"
_FLOW_READ = (
    "SELECT state, (extract(epoch FROM clock_timestamp()) * 1000)::bigint "
    "FROM resonate_web.flow WHERE fn = %s FOR UPDATE"
)
_FLOW_WRITE = "UPDATE resonate_web.flow SET state = %s::jsonb WHERE fn = %s"


#: Set while a session runs one statement: it runs in autocommit (see _PgSessions).
_ONE_STATEMENT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "resonate_web_one_statement", default=False
)


class _PgSessions:
    """resonate-pg's sessions (its ``PgSessions`` protocol) on a pool of autocommit
    connections: a request of the protocol is one statement (a stored procedure,
    atomic on its own), sent as one round trip instead of three (``BEGIN``, the
    call, ``COMMIT``, as a transactional session sends it). A session of several
    statements (the connector's drain of its outbox) is still one transaction."""

    def __init__(self, conninfo: str, *, max_size: int = 16) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def session(self, *, single: bool = False) -> Any:
        """A connection for one unit of work: its own transaction, unless it is
        ``single`` statement (or one of resonate-pg's requests, see ``send``)."""
        pool = self._pool or await self._open()
        async with pool.connection() as conn:
            if single or _ONE_STATEMENT.get():
                yield conn
            else:
                async with conn.transaction():
                    yield conn

    async def dedicated(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _open(self) -> Any:
        from psycopg_pool import AsyncConnectionPool

        async with self._lock:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    self._conninfo,
                    min_size=1,
                    max_size=self._max_size,
                    open=False,
                    kwargs={"autocommit": True},
                )
                await pool.open()
                self._pool = pool
        return self._pool


@contextlib.contextmanager
def _one_statement() -> Iterator[None]:
    token = _ONE_STATEMENT.set(True)
    try:
        yield
    finally:
        _ONE_STATEMENT.reset(token)


def postgres_connection(conninfo: str, *, pid: str, group: str) -> Any:
    """resonate-pg's connection, tagging invocations and answering promise searches
    (which resonate-pg leaves unimplemented) with one query on its schema; every
    request is one round trip (see :class:`_PgSessions`)."""
    from resonate_pg import PostgresConnection

    class _PostgresConnection(PostgresConnection):
        def _single(self) -> Any:
            """A session for one statement, or for code that opens its own transaction."""
            sessions: Any = self._sessions
            return sessions.session(single=True)

        async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
            if is_flow(req):
                return await self._flow(req)
            if not _search.is_search(req):
                with _one_statement():
                    answer = _explain_timeouts(await _edge(super().send, req, headers))
                pushed = getattr(self, "pushed", None)
                if pushed is not None:
                    pushed.listened(req, answer)
                return answer
            query = json.loads(req).get("data") or {}
            async with self._single() as conn:
                cursor = await conn.execute(_search.PG_SEARCH, _search.pg_parameters(query))
                rows = [row[0] for row in await cursor.fetchall()]
            return _search_reply(req, _search.page_of(rows, query))

        async def function_stats(
            self, tags: dict[str, str], since: int, width: int, count: int
        ) -> _search.Stats:
            parameters = _search.pg_stats_parameters(tags, since, width, count)
            async with self._single() as conn:
                cursor = await conn.execute(_search.PG_STATS, parameters)
                row = await cursor.fetchone()
            return _search.stats_of_row(tuple(row or ()) or (0,) * 5 + (None,) * 4)

        async def _flow(self, req: str) -> str:
            data = json.loads(req).get("data") or {}
            given = data.get("fns")
            fns: list[Any] = sorted(map(str, given)) if isinstance(given, list) else [data["fn"]]
            answers: dict[str, Any] = {}
            session: Any = self._single()  # its own transaction
            ready = getattr(self, "_flow_ready", False)
            async with session as conn, conn.transaction():
                if not ready:
                    await self._flow_table(conn)
                for fn in fns:
                    cursor = await conn.execute(_FLOW_READ, [str(fn)])
                    row = await cursor.fetchone()
                    if row is None:
                        await conn.execute(_FLOW_ROW, [str(fn)])
                        cursor = await conn.execute(_FLOW_READ, [str(fn)])
                        row = await cursor.fetchone()
                    state, now = row
                    before = json.dumps(state, sort_keys=True)
                    answers[str(fn)] = flowtable.apply(state, data, int(now))
                    after = json.dumps(state, sort_keys=True)
                    if after != before:
                        await conn.execute(_FLOW_WRITE, [after, str(fn)])
            # Only once the transaction that made the table committed: until then,
            # another task's session would not see it.
            self._flow_ready = True
            answer = answers if "fns" in data else answers[str(data.get("fn"))]
            return _flow_reply(req, lambda _: answer)

        async def _flow_table(self, conn: Any) -> None:
            # Serialized across processes: a second one waits, then finds it made.
            await conn.execute(_FLOW_LOCK)
            await conn.execute(_FLOW_SCHEMA)
            await conn.execute(_FLOW_TABLE)

        def recv(self, callback: Callable[[str], None]) -> None:
            super().recv(lambda raw: callback(_explain_timeouts(raw)))

    return _PostgresConnection(sessions=_PgSessions(conninfo), pid=pid, group=group)


async def function_stats(
    client: Resonate, tags: dict[str, str], since: int, width: int, count: int
) -> _search.Stats | None:
    """Counts by status, ``{p50, p95, max}`` durations, and starts and failures per
    interval (``count`` of ``width`` ms from ``since``) of the root invocations
    carrying ``tags`` created since ``since`` (unix ms), as one query where the
    backend's connection has one (Postgres); ``None`` where it has not (the caller
    reads the function's tag search instead)."""
    answer = getattr(client._network, "function_stats", None)
    if answer is None:
        return None
    found: _search.Stats = await answer(tags, since, width, count)
    return found


# ── long-lived streams and leases ─────────────────────────────────────────


class _EventStream(SSEConnection):
    """The SDK's event stream (``GET /poll/{group}/{pid}``), for as long as the process runs.

    The SDK's opens its session with aiohttp's default ``ClientTimeout(total=300)``
    and reconnects only on ``aiohttp.ClientError``: five minutes after it
    connected, the timeout's plain ``TimeoutError`` ends the listener for good,
    and the process no longer hears of work or settles. Here the stream has no
    total timeout, and a stream that ends for any reason (the server closing it,
    a timeout, any exception) is logged and reconnected with backoff; once it is
    back, every handle still waiting re-registers its listener, so a settle
    pushed while it was away is not missed.
    """

    def __init__(
        self,
        url: str,
        *,
        pid: str,
        group: str,
        auth: str | None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        super().__init__(url, pid=pid, group=group, auth=auth)
        self._timeout = timeout or aiohttp.ClientTimeout(total=None, sock_connect=10)
        self._client: Resonate | None = None
        #: How many times the stream was (re)established.
        self.connections = 0

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._stopped:
                raise RuntimeError("source has been stopped")
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _sse_loop(self) -> None:
        url = f"{self._url}/poll/{self._group}/{self._pid}"
        headers = self._auth_headers({"Accept": "text/event-stream"})
        attempt = 0
        while self._running:
            try:
                session = self._ensure_session()
                async with session.get(url, headers=headers) as resp:
                    if not 200 <= resp.status < 300:
                        raise ConnectionError(f"the server answered {resp.status}")
                    attempt = 0
                    self.connections += 1
                    if self.connections > 1:
                        logger.info("resonate-web: event stream %s reconnected", url)
                        self._resubscribe()
                    await self._read_stream(resp)
                ended = "the server closed it"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ended = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if not self._running:
                break
            delay = self._backoff.delay(attempt)
            attempt += 1
            logger.warning(
                "resonate-web: event stream %s ended (%s); reconnecting in %gs", url, ended, delay
            )
            await self._sleeper(delay)

    def _resubscribe(self) -> None:
        client = self._client
        if client is None:
            return
        for id, sub in list(client._runtime.subs.items()):
            if not sub.settled():
                client._spawn(client._register_and_settle(id, sub))


def event_stream(
    url: str,
    *,
    pid: str,
    group: str,
    auth: str | None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> SSEConnection:
    """The push source of a process on an HTTP backend (see :class:`_EventStream`);
    ``timeout`` is for tests that end a stream the way a timeout does."""
    return _EventStream(url, pid=pid, group=group, auth=auth, timeout=timeout)


def attach_stream(client: Resonate) -> None:
    """Let ``client``'s event stream re-register its waiting handles on reconnecting."""
    source = client._source
    if isinstance(source, _EventStream):
        source._client = client


class _LateSender:
    """The heartbeat's sender, known only once the client that owns it is built."""

    def __init__(self) -> None:
        self.client: Resonate | None = None

    async def task_heartbeat(self, pid: str, tasks: Any) -> Any:
        assert self.client is not None, "keep_leases was not given its client"
        return await self.client.promises.sender.task_heartbeat(pid, tasks)


class LeaseKeeper:
    """Renews the leases of the tasks a process runs, on every backend.

    The SDK renews leases only over a network; on its in-process backend it sends
    no heartbeat, so a function that runs longer than the lease has its task
    handed out again while it still runs, and runs twice (three times, ...) at
    once. Pass :attr:`heartbeat` to ``Resonate(heartbeat=...)``, then
    :meth:`bind` the client.
    """

    def __init__(
        self, pid: str, ttl: float, sleeper: Callable[[float], Awaitable[None]] | None = None
    ) -> None:
        self._sender = _LateSender()
        interval_ms = max(int(ttl * 1000) // 3, 1)
        if sleeper is None:
            self.heartbeat = AsyncHeartbeat(pid, interval_ms, self._sender)
        else:
            self.heartbeat = AsyncHeartbeat(pid, interval_ms, self._sender, sleeper)

    def bind(self, client: Resonate) -> None:
        self._sender.client = client


# ── the SDK's log, where it cries wolf ────────────────────────────────────


def _conflict(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the backend's 409: the task's promise was settled by someone
    else (a cancel, its timeout) while this process still ran it."""
    if isinstance(exc, PlatformError):
        return all(_conflict(cause) for cause in exc.causes)
    return isinstance(exc, ServerError) and exc.code == 409


class _SettledElsewhere(logging.Filter):
    """The SDK logs three ERROR records, two with tracebacks, when a function that
    was canceled (or timed out) while it ran finishes: its fulfill and its release
    both meet a 409. That is the normal end of a cancel: here it is one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "resonate.observability":
            return "code=409" not in record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if not _conflict(exc):
            return True
        if "releasing task" not in str(record.msg):
            return False  # the release's own 409: said already
        task = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        logger.info(
            "resonate-web: task %s is no longer this process's (its invocation was "
            "canceled or timed out, or its lease lapsed): what it returned is dropped",
            task,
        )
        return False


_QUIET = _SettledElsewhere()


def quiet_settled_elsewhere() -> None:
    """Install :class:`_SettledElsewhere` on the SDK's loggers (idempotent)."""
    for name in ("resonate.core", "resonate.observability"):
        log = logging.getLogger(name)
        if _QUIET not in log.filters:
            log.addFilter(_QUIET)


# ── steps in threads ──────────────────────────────────────────────────────


#: What a step run in a thread runs within (the virtual clock's hold on time, under test).
_AROUND: list[Callable[[], contextlib.AbstractContextManager[Any]]] = [contextlib.nullcontext]


def _in_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def threaded(*args: Any, **kwargs: Any) -> Any:
        with _AROUND[0]():
            return await asyncio.to_thread(fn, *args, **kwargs)

    return threaded


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an async callable instance
    )


def _step_param(ctx: Context, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A ``ctx.run`` step's arguments as the wire value of a promise param
    (``{"headers", "data": {"args", "kwargs"} encoded by the client's codec}``), or
    ``None`` when they cannot be encoded (``ctx.run`` takes any object) or exceed
    :data:`_search.MAX_STEP_PARAM`."""
    effects: Any = ctx._state.effects
    try:
        value = effects.codec.encode({"args": list(args), "kwargs": kwargs})
    except Exception:
        return None
    if not isinstance(value.data, str) or len(value.data) > _search.MAX_STEP_PARAM:
        return None
    return (
        {"data": value.data}
        if value.headers is None
        else {"headers": value.headers, "data": value.data}
    )


def name_steps() -> None:
    """Tag every ``ctx.run`` step's promise with the name of the function it runs,
    and record its arguments as its param (idempotent): the SDK leaves a local
    step's param empty (it is never read back: a replay re-derives the arguments),
    so the tree and the dashboard would know the step by its id alone."""
    if getattr(Context, "_resonate_web_named", False):
        return
    original = Context.run

    def run(self: Context, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with _search.naming_step() as step:
            future = original(self, fn, *args, **kwargs)
            # The create is sent from a task started within, which runs later and
            # sees the holder filled in.
            step["id"] = future._id
            step["name"] = fn if isinstance(fn, str) else getattr(fn, "__name__", repr(fn))
            step["param"] = _step_param(self, args, kwargs)
        return future

    Context.run = run  # type: ignore[method-assign]
    Context._resonate_web_named = True  # type: ignore[attr-defined]


def steps_in_threads(
    around: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> None:
    """Run every ``def`` durable function the SDK calls, ``ctx.run`` steps included,
    in a worker thread (idempotent).

    The SDK calls a ``def`` step on its event loop: one that blocks (I/O,
    ``time.sleep``, the ORM) blocks the loop, and with it the heartbeat that
    renews the task's lease. On a backend with a clock of its own (a server,
    Postgres) the lease then lapses, the task is handed out again, and the
    function runs twice at once. resonate-web already runs ``def`` functions in
    threads; this does the same for the steps they run.
    """
    _AROUND[:] = [around]
    if getattr(DurableFunction, "_resonate_web_threads", False):
        return
    original = DurableFunction.__init__

    def __init__(self: DurableFunction, fn: Callable[..., Any]) -> None:
        original(self, fn)
        if not _is_async(fn):
            self._fn = _in_thread(fn)

    DurableFunction.__init__ = __init__  # type: ignore[method-assign]
    DurableFunction._resonate_web_threads = True  # type: ignore[attr-defined]


# ── failed attempts, seen where they run and recorded where the gateway looks ──


#: Told of each failed attempt of a function or step the SDK retries by policy:
#: ``(ctx, function name, attempt, exception, delay before the next or None, policy)``.
type FailureReport = Callable[[Context, str, int, BaseException, float | None, Any], None]

_REPORT: list[FailureReport] = []


class _Reporting:
    """A retry policy that tells :data:`_REPORT` of the failure it is consulted on
    (the SDK consults it inside its ``except`` block, right after the attempt)."""

    def __init__(self, policy: Any, ctx: Context, name: str) -> None:
        self.policy, self.ctx, self.name = policy, ctx, name

    def next(self, attempt: int) -> Any:
        delay = self.policy.next(attempt)
        exc = sys.exception()
        if exc is not None and _REPORT:
            _REPORT[0](self.ctx, self.name, attempt, exc, delay, self.policy)
        return delay


def report_failures(report: FailureReport) -> None:
    """Have ``report`` told of every failed attempt the SDK retries by policy, a
    ``ctx.run`` step's included: the SDK retries a failing step without a word.
    Process-wide (the last ``report`` given is the one told); idempotent."""
    _REPORT[:] = [report]
    if getattr(Context, "_resonate_web_reports", False):
        return
    original = Context.invoke_with_retry

    async def invoke_with_retry(
        self: Context, df: DurableFunction, payload: Any, policy: Any, **kw: Any
    ) -> Any:
        return await original(self, df, payload, _Reporting(policy, self, df.name), **kw)

    Context.invoke_with_retry = invoke_with_retry  # type: ignore[method-assign]
    Context._resonate_web_reports = True  # type: ignore[attr-defined]


_NOTING: set[asyncio.Task[None]] = set()


def note_failure(ctx: Context, step: str, attempt: int, data: dict[str, Any]) -> None:
    """Record failed attempt ``attempt`` of ``step`` of ``ctx``'s invocation in the
    backend, where every gateway can find it (a promise tagged
    :data:`_search.FAILURE_TAG`, ``data`` its param, created already timed out so it
    holds no timer), without waiting for it."""
    effects: Any = ctx._state.effects
    origin = ctx.info.origin_id
    now = context_now(ctx)
    req = PromiseCreateReq(
        id=f"{origin}.failure.{step}.{attempt}",
        timeout_at=now,
        param=effects.codec.encode(data),
        tags={_search.FAILURE_TAG: origin},
    )

    async def create() -> None:
        try:
            await effects.sender.promise_create(req)
        except Exception as exc:  # the attempt's own log line said it already
            logger.debug("resonate-web: recording a failed attempt of %s: %s", origin, exc)

    task = asyncio.get_running_loop().create_task(create())
    _NOTING.add(task)
    task.add_done_callback(_NOTING.discard)
