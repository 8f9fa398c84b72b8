"""The dev server, in process: the protocol as resonate-sdk's connections use it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from resonate.connections.sse import SseFramer
from resonate.context import Context
from resonate.resonate import Resonate
from resonate_base import PROTOCOL_VERSION

from resonate_web import _devserver as devserver
from resonate_web._core.sdk import IndexedState
from resonate_web._devserver import Address, DevServer
from tests.support import procs

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, DevServer]]:
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    dev = DevServer()
    stop = asyncio.Event()
    task = asyncio.create_task(devserver.serve("127.0.0.1", port, stop=stop, server=dev))
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/health") as resp:
                    if resp.status == 200:
                        break
            await asyncio.sleep(0.02)
    yield url, dev
    stop.set()
    await asyncio.wait_for(task, 10)


async def call(url: str, kind: str, data: Any) -> dict[str, Any]:
    envelope = {"kind": kind, "head": {"corrId": "c-1", "version": PROTOCOL_VERSION}, "data": data}
    async with aiohttp.ClientSession() as session, session.post(f"{url}/", json=envelope) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def create(url: str, id: str, target: str | None = None) -> dict[str, Any]:
    tags = {"resonate:target": target} if target else {}
    data = {"id": id, "param": {}, "tags": tags, "timeoutAt": 2**62}
    return await call(url, "promise.create", data)


class Listener:
    """A raw ``GET /poll/{group}/{pid}``, parsed with the SDK's own SSE framer."""

    def __init__(self, url: str, group: str, pid: str) -> None:
        self.url = f"{url}/poll/{group}/{pid}"
        self.framer = SseFramer()
        self.buffered: list[str] = []
        self.session = aiohttp.ClientSession()
        self.resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> Listener:
        self.resp = await self.session.get(self.url)
        assert self.resp.status == 200
        assert self.resp.headers["Content-Type"] == "text/event-stream"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.resp is not None:
            self.resp.close()
        await self.session.close()

    async def next(self, within: float = 5) -> dict[str, Any]:
        assert self.resp is not None
        async with asyncio.timeout(within):
            while not self.buffered:
                self.buffered.extend(self.framer.feed(await self.resp.content.readany()))
        message: dict[str, Any] = json.loads(self.buffered.pop(0))
        return message

    async def silent(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await self.next(seconds)
            return False
        return True


async def wait_streams(dev: DevServer, group: str, count: int) -> None:
    async with asyncio.timeout(5):
        while dev.connected().get(group, 0) != count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def test_addresses() -> None:
    assert Address.parse("poll://any@workers") == Address("workers", None)
    assert Address.parse("poll://uni@gateway/abc") == Address("gateway", "abc")
    assert Address.parse("poll://any@workers/abc") == Address("workers", None, prefer="abc")
    for bad in (
        "http://x",
        "poll://workers",
        "poll://uni@g",
        "poll://any@",
        "poll://uni@g/a/b",
        "poll://any@g/",
        "poll://any@g/a/b",
    ):
        assert Address.parse(bad) is None


# ── the wire, in process: the protocol's shapes and versions ────────────────


class Recorder(DevServer):
    """A dev server that also keeps every message it routes, as sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Any] = []

    def deliver(self, message: devserver.Message, *, avoid: devserver.Stream | None = None) -> None:
        self.sent.append(message.body)
        super().deliver(message, avoid=avoid)


def rpc(dev: DevServer, kind: str, data: Any, corr_id: str = "c-2") -> dict[str, Any]:
    head = {"corrId": corr_id, "version": PROTOCOL_VERSION}
    status, body = dev.apply(json.dumps({"kind": kind, "head": head, "data": data}).encode())
    assert status == 200
    response: dict[str, Any] = json.loads(body)
    assert (response["kind"], response["head"]["corrId"]) == (kind, corr_id)
    assert response["head"]["version"] == PROTOCOL_VERSION
    return response


def test_task_versions_count_acquisitions() -> None:
    dev = Recorder()
    target = "poll://any@w"
    rpc(
        dev,
        "promise.create",
        {"id": "t", "param": {}, "tags": {"resonate:target": target}, "timeoutAt": 2**62},
    )
    assert dev.sent == [
        {"kind": "execute", "head": {}, "data": {"task": {"id": "t", "version": 0}}}
    ]

    def acquire(version: int) -> dict[str, Any]:
        return rpc(dev, "task.acquire", {"id": "t", "version": version, "pid": "p", "ttl": 60_000})

    assert acquire(1)["head"]["status"] == 409  # not the version it was dispatched at
    first = acquire(0)
    assert first["head"]["status"] == 200
    assert first["data"]["task"] == {
        "id": "t",
        "state": "acquired",
        "version": 1,
        "resumes": 0,
        "ttl": 60_000,
        "pid": "p",
    }
    assert acquire(0)["head"]["status"] == 409  # held
    # The holder's requests are fenced by the version its acquisition returned.
    stale = rpc(dev, "task.release", {"id": "t", "version": 0})
    assert (stale["head"]["status"], stale["data"]) == (
        409,
        "version mismatch: task t is acquired at version 1, not 0",
    )
    rpc(dev, "task.heartbeat", {"pid": "p", "tasks": [{"id": "t", "version": 1}]})
    assert rpc(dev, "task.release", {"id": "t", "version": 1})["head"]["status"] == 200
    # Released: dispatched again at the version it was held at, acquired one on.
    assert dev.sent[-1] == {
        "kind": "execute",
        "head": {},
        "data": {"task": {"id": "t", "version": 1}},
    }
    assert acquire(0)["head"]["status"] == 409
    assert acquire(1)["data"]["task"]["version"] == 2
    fulfilled = rpc(
        dev,
        "task.fulfill",
        {
            "id": "t",
            "version": 2,
            "action": {
                "kind": "promise.settle",
                "head": {"corrId": "c-3", "version": PROTOCOL_VERSION},
                "data": {"id": "t", "state": "resolved", "value": {"data": "MQ=="}},
            },
        },
    )
    assert fulfilled["head"]["status"] == 200
    assert fulfilled["data"]["promise"]["state"] == "resolved"
    assert fulfilled["data"]["promise"]["value"] == {"data": "MQ=="}


def test_records_errors_and_fences_have_the_protocol_s_shape() -> None:
    dev = Recorder()
    created = rpc(dev, "promise.create", {"id": "p", "param": {}, "tags": {}, "timeoutAt": 2**62})
    assert created["head"]["status"] == 200
    record = created["data"]["promise"]
    # A pending promise: an empty value, not null; no settledAt at all.
    assert set(record) == {"id", "state", "param", "value", "tags", "timeoutAt", "createdAt"}
    assert (record["param"], record["value"]) == ({}, {})

    missing = rpc(dev, "promise.get", {"id": "nobody"})
    assert (missing["head"]["status"], missing["data"]) == (404, "promise nobody not found")
    forged = rpc(dev, "promise.settle", {"id": "p", "state": "rejected_timedout", "value": {}})
    assert forged["head"]["status"] == 400 and isinstance(forged["data"], str)
    for kind in ("task.halt", "promise.register_callback"):
        unimplemented = rpc(dev, kind, {"id": "p"})
        assert unimplemented["head"]["status"] == 501 and isinstance(unimplemented["data"], str)

    # A task created (and acquired) by its first process, at version 1.
    root = {"id": "r", "param": {}, "tags": {"resonate:target": "poll://any@w"}, "timeoutAt": 2**62}
    action = {"kind": "promise.create", "head": {"corrId": "c-4", "version": PROTOCOL_VERSION}}
    task = rpc(dev, "task.create", {"pid": "me", "ttl": 60_000, "action": {**action, "data": root}})
    assert task["head"]["status"] == 200
    assert task["data"]["task"]["version"] == 1
    assert rpc(dev, "task.get", {"id": "r"})["data"]["task"] == task["data"]["task"]
    assert rpc(dev, "task.get", {"id": "nothing"})["head"]["status"] == 404
    # A fence answers with its action's whole response, nested.
    fenced = rpc(
        dev,
        "task.fence",
        {
            "id": "r",
            "version": 1,
            "action": {
                **action,
                "data": {"id": "r:0", "param": {}, "tags": {}, "timeoutAt": 2**62},
            },
        },
    )
    assert fenced["head"]["status"] == 200
    nested = fenced["data"]["action"]
    assert nested["kind"] == "promise.create"
    assert nested["head"] == {"corrId": "c-2", "status": 200, "version": PROTOCOL_VERSION}
    assert nested["data"]["promise"]["id"] == "r:0"
    assert isinstance(fenced["data"]["preload"], list)


async def test_health_and_protocol_errors(server: tuple[str, DevServer]) -> None:
    url, _ = server
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/health") as resp:
            assert (await resp.json())["status"] == "ok"
        async with session.post(f"{url}/", data=b"{nope") as resp:
            assert resp.status == 400
            assert (await resp.json())["head"]["status"] == 400
        async with session.get(f"{url}/poll/a@b/p") as resp:
            assert resp.status == 400
    unknown = await call(url, "promise.frobnicate", {"id": "x"})
    assert unknown["kind"] == "promise.frobnicate" and unknown["head"]["status"] == 400
    missing = await call(url, "promise.get", {"id": "nobody"})
    assert (missing["head"]["status"], missing["head"]["corrId"]) == (404, "c-1")


async def test_anycast_waits_for_a_member_and_moves_when_its_stream_drops(
    server: tuple[str, DevServer],
) -> None:
    url, dev = server
    created = await create(url, "job-1", "poll://any@g")
    assert created["head"]["status"] == 200  # the protocol's create: 200, new or not
    port = int(url.rsplit(":", 1)[1])
    # A member that connects, receives the execute, and vanishes without a word.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /poll/g/p1 HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    async with asyncio.timeout(5):
        while b"job-1" not in received:
            received += await reader.read(4096)
    execute = b'{"kind":"execute","head":{},"data":{"task":{"id":"job-1","version":0}}}'
    assert b"data: " + execute in received
    writer.transport.abort()
    await wait_streams(dev, "g", 0)
    # Nobody acquired the task: the next member gets it now, not after the 30 s retry.
    async with Listener(url, "g", "p2") as p2:
        message = await p2.next(within=2)
        assert message == {
            "kind": "execute",
            "head": {},
            "data": {"task": {"id": "job-1", "version": 0}},
        }
        acquired = await call(
            url, "task.acquire", {"id": "job-1", "version": 0, "pid": "p2", "ttl": 60_000}
        )
        assert acquired["head"]["status"] == 200
    await wait_streams(dev, "g", 0)
    # Claimed: a later member is not handed it again.
    async with Listener(url, "g", "p3") as p3:
        assert await p3.silent(0.5)


async def test_anycast_round_robin(server: tuple[str, DevServer]) -> None:
    url, dev = server
    async with Listener(url, "rr", "a") as a, Listener(url, "rr", "b") as b:
        await wait_streams(dev, "rr", 2)
        for n in range(4):
            await create(url, f"rr-{n}", "poll://any@rr")
        got_a = {(await a.next())["data"]["task"]["id"] for _ in range(2)}
        got_b = {(await b.next())["data"]["task"]["id"] for _ in range(2)}
        assert got_a | got_b == {f"rr-{n}" for n in range(4)}
        assert await a.silent(0.2) and await b.silent(0.2)


async def test_anycast_prefers_the_member_its_address_names(server: tuple[str, DevServer]) -> None:
    url, dev = server
    async with Listener(url, "pf", "a") as a:
        async with Listener(url, "pf", "b") as b:
            await wait_streams(dev, "pf", 2)
            for n in range(3):
                await create(url, f"pf-{n}", "poll://any@pf/b")
            assert [(await b.next())["data"]["task"]["id"] for _ in range(3)] == [
                "pf-0",
                "pf-1",
                "pf-2",
            ]
            assert await a.silent(0.2)
            for n in range(3):
                acquire = {"id": f"pf-{n}", "version": 0, "pid": "b", "ttl": 60_000}
                assert (await call(url, "task.acquire", acquire))["head"]["status"] == 200
        await wait_streams(dev, "pf", 1)
        # The member it names is gone: any other member will do.
        await create(url, "pf-3", "poll://any@pf/b")
        assert (await a.next())["data"]["task"]["id"] == "pf-3"


async def test_unblock_goes_to_the_listener_s_own_stream(server: tuple[str, DevServer]) -> None:
    url, dev = server
    await create(url, "awaited")
    registered = await call(
        url, "promise.register_listener", {"awaited": "awaited", "address": "poll://uni@gw/me"}
    )
    assert registered["head"]["status"] == 200
    async with Listener(url, "gw", "other") as other, Listener(url, "gw", "me") as me:
        await wait_streams(dev, "gw", 2)
        settled = await call(
            url, "promise.settle", {"id": "awaited", "state": "resolved", "value": {}}
        )
        assert settled["head"]["status"] == 200
        message = await me.next()
        assert message["kind"] == "unblock"
        assert message["data"]["promise"]["id"] == "awaited"
        assert message["data"]["promise"]["state"] == "resolved"
        assert await other.silent(0.3)


async def test_the_sdk_s_own_connections_run_a_workflow(server: tuple[str, DevServer]) -> None:
    url, dev = server

    async def double(ctx: Context, n: int) -> int:
        await ctx.sleep(timedelta(milliseconds=200))  # a durable timer, on the server clock
        return 2 * n

    worker = Resonate(url=url, group="workers", ttl=timedelta(seconds=5), autostart=False)
    worker.register(double, name="double")
    caller = Resonate(url=url, group="callers", autostart=False)
    worker.start()
    caller.start()
    try:
        await wait_streams(dev, "workers", 1)
        await wait_streams(dev, "callers", 1)
        handle = caller.options(target="workers").rpc("sdk-1", "double", 21)
        # Settled by the unblock pushed to the caller's stream (the SDK's own
        # fallback re-check is a minute away).
        assert await asyncio.wait_for(handle.result(), 10) == 42
        # It ran on the indexed state machine: the invocation is on its own
        # branch, and no settled task is left awaiting anything.
        assert isinstance(dev.state, IndexedState)
        assert "sdk-1" in dev.state.branches["sdk-1"]
        assert not any(dev.state.awaited_by.values())
    finally:
        await caller.stop()
        await worker.stop()


async def test_unicast_messages_wait_for_their_process_to_reconnect(
    server: tuple[str, DevServer],
) -> None:
    url, _ = server
    await create(url, "later")
    await call(
        url, "promise.register_listener", {"awaited": "later", "address": "poll://uni@gw/me"}
    )
    await call(url, "promise.settle", {"id": "later", "state": "resolved", "value": {}})
    async with Listener(url, "gw", "someone-else") as other:
        assert await other.silent(0.3)
    async with Listener(url, "gw", "me") as me:  # e.g. an SSE reconnect
        message = await me.next()
        assert (message["kind"], message["data"]["promise"]["id"]) == ("unblock", "later")


async def test_a_waiting_task_is_held_back_once(server: tuple[str, DevServer]) -> None:
    url, dev = server
    await create(url, "once", "poll://any@late")
    # The state machine re-sends a task nobody acquired every 30 s.
    dev.state.outgoing = []
    dev.state.tick(devserver.now_ms() + 31_000)
    assert [m.address for m in dev.state.outgoing] == ["poll://any@late"]
    dev._route(dev.state.outgoing)
    dev.state.outgoing = []
    async with Listener(url, "late", "p") as member:
        assert (await member.next())["data"]["task"]["id"] == "once"
        assert await member.silent(0.3)


def test_held_executes_are_forgotten_once_their_task_is_done() -> None:
    dev = DevServer()
    tags = {"resonate:target": "poll://any@nobody"}
    rpc(dev, "promise.create", {"id": "gone", "param": {}, "tags": tags, "timeoutAt": 2**62})
    rpc(dev, "promise.create", {"id": "kept", "param": {}, "tags": tags, "timeoutAt": 2**62})
    rpc(dev, "promise.settle", {"id": "gone", "state": "resolved", "value": {}})
    dev.prune()
    assert list(dev._anycast_backlog["nobody"]) == ["kept"]


def test_resonate_web_dev_serves_until_sigterm_and_exits_0() -> None:
    port = procs.free_port()
    argv = procs.python_module("resonate_web.cli", "dev", "--port", str(port))
    with procs.process(argv, ready_url=f"http://127.0.0.1:{port}/health") as proc:
        assert procs.streams(f"http://127.0.0.1:{port}") == {}
    assert proc.returncode == 0
