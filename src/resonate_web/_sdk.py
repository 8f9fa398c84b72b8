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
import json
import logging
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from resonate.connections import HttpConnection, LocalConnection
from resonate.connections.local import (
    OutgoingMessage,
    ServerState,
    Task,
    extract_action_data,
    unwrap_request_envelope,
    wrap_response_envelope,
)
from resonate.context import Context
from resonate.handle import PromiseResult, ResonateHandle
from resonate.resonate import Resonate
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


def _search_reply(request: str, page: dict[str, Any]) -> str:
    head = json.loads(request).get("head") or {}
    flat = {"kind": "promise.search", "corrId": head.get("corrId"), "status": 200, **page}
    return json.dumps(wrap_response_envelope(flat), separators=(",", ":"))


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
    """

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        if _search.is_search(req):
            query = json.loads(req).get("data") or {}
            records = (p.to_record() for p in self.state.promises.values())
            return _search_reply(req, _search.search_records(records, query))
        return await super().send(_search.tag_root_create(req), headers)

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


def embedded_connection(*, pid: str, group: str) -> LocalConnection:
    """The embedded backend for one client (see :class:`_EmbeddedConnection`)."""
    return _EmbeddedConnection(pid=pid, group=group)


class _HttpConnection(HttpConnection):
    """The SDK's HTTP connection, tagging the invocations this process starts (the
    server answers searches itself)."""

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        return await super().send(_search.tag_root_create(req), headers)


def http_connection(url: str, *, auth: str | None, backoff: Any) -> HttpConnection:
    return _HttpConnection(url, auth=auth, backoff=backoff)


def postgres_connection(conninfo: str, *, pid: str, group: str) -> Any:
    """resonate-pg's connection, tagging invocations and answering promise searches
    (which resonate-pg leaves unimplemented) with one query on its schema."""
    from resonate_pg import PostgresConnection

    class _PostgresConnection(PostgresConnection):
        async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
            if not _search.is_search(req):
                return str(await super().send(_search.tag_root_create(req), headers))
            query = json.loads(req).get("data") or {}
            async with self._sessions.session() as conn:
                cursor = await conn.execute(_search.PG_SEARCH, _search.pg_parameters(query))
                rows = [row[0] for row in await cursor.fetchall()]
            return _search_reply(req, _search.page_of(rows, query))

    return _PostgresConnection(conninfo=conninfo, pid=pid, group=group)
