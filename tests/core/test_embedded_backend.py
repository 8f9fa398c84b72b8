"""The embedded backend delivers only what is addressed to this process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from resonate.types import Value

from resonate_web import Settings
from resonate_web._core.runtime import Runtime
from resonate_web._core.sdk import _EmbeddedConnection as EmbeddedConnection
from resonate_web._gateway.router import Gateway, Request
from tests.support.functions import build


async def test_a_task_for_another_group_is_not_delivered_here() -> None:
    runtime = Runtime(Settings.load(environ={}), build())
    client = await runtime.start()
    network = client._network
    assert isinstance(network, EmbeddedConnection)
    delivered: list[dict[str, object]] = []
    network.recv(lambda raw: delivered.append(json.loads(raw)))
    gateway = Gateway(runtime)
    try:
        body = b'{"args": [1, 2]}'
        headers = {"content-type": "application/json"}
        remote = Request("POST", {"name": "remote_add"}, {"id": "far"}, headers, body, "/r")
        assert (await gateway.handle("start", remote, "/")).status == 202
        local = Request("POST", {"name": "add"}, {"id": "near", "wait": "5"}, headers, body, "/r")
        assert (await gateway.handle("start", local, "/")).body["result"] == 3
        await asyncio.sleep(1.5)  # a tick or two of the backend's timers
        tasks = [m["data"]["task"]["id"] for m in delivered if m["kind"] == "execute"]  # type: ignore[index]
        assert "far" not in tasks
        status = Request("GET", {"id": "far"}, {}, {}, b"", "/r")
        assert (await gateway.handle("status", status, "/")).body["status"] == "pending"
    finally:
        await runtime.stop()


async def test_a_wait_woken_while_the_invocation_is_pending_waits_on() -> None:
    """The SDK's periodic listener refresh settles a handle as gone (rejected) when it
    runs between the handle's subscription and its create, though the invocation is
    pending. A start with ``wait`` and the client's ``result()`` go on waiting."""
    from resonate_web._core.runtime import Portal
    from resonate_web._inprocess import AsyncClient

    runtime = Runtime(Settings.load(environ={}), build())
    client = await runtime.start()
    portal = Portal(runtime, own_loop=False)
    await portal.attach()
    gateway = Gateway(runtime)

    def gone(id: str) -> None:  # what the refresh does on a 404 (SDK-private, on purpose)
        sub = client._runtime.subs[id]
        client._settle_subscription_gone(id, sub, f"promise {id} not found")

    try:
        body = b'{"args": ["approve-me"]}'
        headers = {"content-type": "application/json"}
        query = {"id": "ask", "wait": "30"}
        start = Request("POST", {"name": "approval"}, query, headers, body, "/r")
        waiting = asyncio.create_task(gateway.handle("start", start, "/"))
        await _created(client, "ask:1")  # it awaits its promise
        gone("ask")
        await asyncio.sleep(0.2)
        assert not waiting.done()  # still waiting, not a 202 for a pending invocation
        await client.promises.resolve("ask:1", Value(data="yes"))
        answer = await waiting
        assert (answer.status, answer.body["status"], answer.body["result"]) == (
            200,
            "resolved",
            "yes",
        )

        handle = await AsyncClient(portal, gateway).run("ask-again", "approval", "again")
        await _created(client, "ask-again:1")
        gone("ask-again")
        result = asyncio.create_task(handle.result(timeout=30))
        await asyncio.sleep(0.2)
        assert not result.done()
        await client.promises.resolve("ask-again:1", Value(data="ok"))
        assert await result == "ok"
    finally:
        await portal.detach()


async def _created(client: Any, id: str) -> None:
    for _ in range(1000):
        if id in client._network.state.promises:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{id} was never created")
