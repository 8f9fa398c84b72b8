"""The embedded backend delivers only what is addressed to this process."""

from __future__ import annotations

import asyncio
import json

from resonate_web import Runtime, Settings
from resonate_web._sdk import _EmbeddedConnection as EmbeddedConnection
from resonate_web.gateway import Gateway, Request
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
