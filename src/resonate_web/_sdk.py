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
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from importlib import metadata
from typing import Any

from resonate.connections import HttpConnection, LocalConnection
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
from resonate.error import ConnectorError, DecodingError
from resonate.handle import PromiseResult, ResonateHandle
from resonate.resonate import Resonate
from resonate.send import parse_promise
from resonate.transport import UnblockMsg
from resonate.types import PromiseCreateReq, PromiseRecord, Value

from resonate_web import _search

__all__ = [
    "EXTERNAL_TAG",
    "PICKLE_KEY",
    "SDK_RANGE",
    "OutgoingMessage",
    "ServerState",
    "Task",
    "client_pid",
    "create_promise",
    "decode_value",
    "embedded_connection",
    "extract_action_data",
    "held_tasks",
    "http_connection",
    "is_workflow",
    "postgres_connection",
    "prune_embedded",
    "read_promise",
    "release_task",
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
        """Listen to ``client``'s pushed messages, from every source it has."""
        client._transport.recv(self._on_message)

    def _on_message(self, message: Any) -> None:
        if isinstance(message, UnblockMsg):
            record = message.data.promise
            if record.id in self._waiting and record.state != "pending":
                self._records[record.id] = record

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
) -> str:
    """``send`` ``req`` with root creates tagged; a launch's create keeps its answer.

    To a ``remote`` backend, a launch's create is dropped once the launch is
    abandoned: the SDK's connection retries a request forever while the backend
    is down, and a create sent after the request answered 503 would start an
    invocation nobody knows of (and its retry, without an id, a second one).
    """
    tagged, launch = _search.tag_root_create(req)
    if launch is None:
        return str(await send(tagged, headers))
    if not remote:
        launch.answer = str(await send(tagged, headers))
        return launch.answer
    sending = asyncio.ensure_future(send(tagged, headers))
    abandoned = asyncio.ensure_future(launch.abandoned.wait())
    try:
        await asyncio.wait({sending, abandoned}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        abandoned.cancel()
    if not sending.done():
        sending.cancel()
        raise ConnectorError(RuntimeError(f"the start of {launch.id} was abandoned"))
    launch.answer = str(sending.result())
    return launch.answer


def launched_record(launch: _search.Launch) -> tuple[PromiseRecord | None, bool]:
    """What the backend answered ``launch``'s create: the stored record (values still
    encoded) and whether this launch created it; ``(None, False)`` when the answer
    did not come through here or carries no record (a conflict)."""
    if launch.answer is None:
        return None, False
    envelope = json.loads(launch.answer)
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


class _Awaiters(set[str]):
    """A promise's ``awaiters`` (the tasks waiting on it), indexed the other way
    round in :attr:`_IndexedState.awaited_by` as tasks are added and removed."""

    def __init__(self, state: _IndexedState, promise_id: str, tasks: Iterable[str]) -> None:
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

    def __init__(self, state: _IndexedState) -> None:
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


class _IndexedState(ServerState):
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

    Its state machine is :class:`_IndexedState`, whose cost per invocation does
    not grow with the invocations it holds.
    """

    def __init__(self, *, pid: str, group: str) -> None:
        super().__init__(pid=pid, group=group)
        self.state = _IndexedState()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        if _search.is_search(req):
            query = json.loads(req).get("data") or {}
            records = (p.to_record() for p in self.state.promises.values())
            return _search_reply(req, _search.search_records(records, query))
        return await _edge(super().send, req, headers, remote=False)

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
        p.id for p in state.promises.values() if p.tags.get("resonate:origin", p.id) in doomed
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
    if not isinstance(network, LocalConnection) or not isinstance(network.state, _IndexedState):
        return 0
    return network.state.roots


def embedded_connection(*, pid: str, group: str) -> LocalConnection:
    """The embedded backend for one client (see :class:`_EmbeddedConnection`)."""
    return _EmbeddedConnection(pid=pid, group=group)


class _HttpConnection(HttpConnection):
    """The SDK's HTTP connection, tagging the invocations this process starts (the
    server answers searches itself)."""

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        return await _edge(super().send, req, headers)


def http_connection(url: str, *, auth: str | None, backoff: Any) -> HttpConnection:
    return _HttpConnection(url, auth=auth, backoff=backoff)


def postgres_connection(conninfo: str, *, pid: str, group: str) -> Any:
    """resonate-pg's connection, tagging invocations and answering promise searches
    (which resonate-pg leaves unimplemented) with one query on its schema."""
    from resonate_pg import PostgresConnection

    class _PostgresConnection(PostgresConnection):
        async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
            if not _search.is_search(req):
                return await _edge(super().send, req, headers)
            query = json.loads(req).get("data") or {}
            async with self._sessions.session() as conn:
                cursor = await conn.execute(_search.PG_SEARCH, _search.pg_parameters(query))
                rows = [row[0] for row in await cursor.fetchall()]
            return _search_reply(req, _search.page_of(rows, query))

    return _PostgresConnection(conninfo=conninfo, pid=pid, group=group)
