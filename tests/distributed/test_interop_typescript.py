"""``resonate-web dev`` speaking the Resonate protocol to the TypeScript SDK too.

Real processes on free 127.0.0.1 ports, ended by PID: the dev server, workers
written with the TypeScript SDK (``tests/interop/ts-worker/worker.js``, run by
node, ``@resonatehq/sdk`` pinned by its lockfile), a Python worker group, and one
FastAPI gateway (``tests/support/interop_app.py``) that exposes the TypeScript
functions with ``expose_remote(name, target="ts-workers", signature=...)`` and
its own with ``expose(fn, target="py-workers")``.

``make test`` installs the worker's packages (``npm ci``); run directly, the
tests install them when they are missing. Without Node.js they skip.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from resonate_base import PROTOCOL_VERSION

from resonate_web import _devserver as devserver
from resonate_web._devserver import DevServer
from tests.support import procs
from tests.support.interop_app import PY_GROUP, TS_GROUP

pytestmark = pytest.mark.timeout(180)

APP = "tests.support.interop_app"
TS_WORKER = procs.ROOT / "tests" / "interop" / "ts-worker"
NODE = shutil.which("node")
LEASE_TTL_MS = "4000"  # a killed TypeScript worker's task moves on after this


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the TypeScript worker's packages installed."""
    if NODE is None:
        pytest.skip("Node.js is not installed: the TypeScript SDK cannot run here")
    if not (TS_WORKER / "node_modules" / "@resonatehq" / "sdk").is_dir():
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not: cannot install the worker"
        subprocess.run([npm, "ci", "--loglevel=error"], cwd=TS_WORKER, check=True, timeout=600)
    return NODE


@dataclass
class Cluster:
    server: str
    gateway: str
    node: str
    logs: Path
    execlog: Path
    ts_workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    py_workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: int = 0

    def add_ts_worker(self) -> subprocess.Popen[bytes]:
        self.started += 1
        proc = procs.start_member(
            [self.node, str(TS_WORKER / "worker.js"), TS_GROUP],
            self.server,
            group=TS_GROUP,
            env={
                "RESONATE_LEASE_TTL_MS": LEASE_TTL_MS,
                "RESONATE_WEB_TEST_EXECLOG": str(self.execlog),
            },
            log=self.logs / f"ts-worker-{self.started}.log",
        )
        self.ts_workers.append(proc)
        return proc

    def kill_ts_worker(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.ts_workers.remove(proc)


@pytest.fixture(scope="module")
def cluster(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("interop")
    with procs.dev_server(log=logs / "dev.log") as server:
        c = Cluster(server=server, gateway="", node=node, logs=logs, execlog=logs / "exec.log")
        try:
            c.add_ts_worker()
            c.py_workers.append(
                procs.start_worker(APP, server, group=PY_GROUP, log=logs / "py-worker.log")
            )
            with procs.gateway(f"{APP}:app", server, log=logs / "gateway.log") as (gateway, _):
                c.gateway = gateway
                procs.wait_streams(server, "gateway", 1)
                yield c
        finally:
            for proc in c.ts_workers + c.py_workers:
                procs.stop(proc)


def new_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def post(base: str, fn: str, *args: Any, id: str | None = None, wait: float = 0) -> httpx.Response:
    params = {"wait": str(wait), **({"id": id} if id else {})}
    return httpx.post(
        f"{base}/resonate/functions/{fn}",
        params=params,
        json={"args": list(args)},
        timeout=wait + 10,
    )


def call_all(base: str, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Start every ``(function, args)`` at once, each waiting for its result."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"/resonate/functions/{fn}", params={"wait": "30"}, json={"args": a}
                    )
                    for fn, a in calls
                )
            )

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * len(calls), [r.text for r in responses]
    return [r.json() for r in responses]


def task_state(server: str, id: str) -> str | None:
    envelope = {"kind": "task.get", "head": {"corrId": "t", "version": PROTOCOL_VERSION}}
    body = httpx.post(f"{server}/", json={**envelope, "data": {"id": id}}, timeout=5).json()
    return body["data"]["task"]["state"] if body["head"]["status"] == 200 else None


def wait_task_state(server: str, id: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if task_state(server, id) == state:
            return
        time.sleep(0.02)
    raise TimeoutError(f"task {id} not {state} within {timeout}s ({task_state(server, id)})")


# ── a TypeScript worker behind a Python gateway ─────────────────────────────


def test_invocations_run_on_the_typescript_worker_and_resolve(cluster: Cluster) -> None:
    resp = post(cluster.gateway, "add", 2, 3, wait=30)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert (doc["function"], doc["status"], doc["result"]) == ("add", "resolved", 5)

    docs = call_all(cluster.gateway, [("add", [n, 100]) for n in range(20)])
    assert [(d["status"], d["result"]) for d in docs] == [("resolved", n + 100) for n in range(20)]
    assert post(cluster.gateway, "whoami", wait=30).json()["result"] == f"typescript:{TS_GROUP}"


def test_a_typescript_rejection_shows_as_rejected_with_its_message(cluster: Cluster) -> None:
    resp = post(cluster.gateway, "fail", "out of stock", wait=30)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["status"] == "rejected"
    assert doc["error"]["message"] == "out of stock"
    assert doc["error"]["type"] == "Error"


def test_a_durable_sleep_in_typescript_resumes_on_a_fresh_worker(cluster: Cluster) -> None:
    """``countdown`` sleeps with ``ctx.sleep``: while it sleeps no worker holds it,
    so killing the only TypeScript worker mid-sleep loses nothing."""
    id = new_id("countdown")
    assert post(cluster.gateway, "countdown", 2, 3.0, id=id).status_code == 202
    wait_task_state(cluster.server, id, "suspended")
    (sleeper,) = cluster.ts_workers
    cluster.kill_ts_worker(sleeper)
    procs.wait_streams(cluster.server, TS_GROUP, 0)
    cluster.add_ts_worker()
    doc = procs.settle(cluster.gateway, id)
    assert (doc["status"], doc["result"]) == ("resolved", 2)


def test_a_killed_typescript_worker_s_invocation_completes_on_another(cluster: Cluster) -> None:
    """Its lease runs out, and the task moves to the other worker at the next
    version: the versions the dev server hands out are the protocol's."""
    cluster.add_ts_worker()
    id = new_id("slow")
    assert post(cluster.gateway, "slow", 3.0, "survived", id=id).status_code == 202
    victim_pid = procs.wait_execution(cluster.execlog, "start", id)
    victim = next(p for p in cluster.ts_workers if p.pid == victim_pid)
    cluster.kill_ts_worker(victim)

    doc = procs.settle(cluster.gateway, id)

    assert (doc["status"], doc["result"]) == ("resolved", "survived")
    runs = [(pid, event) for pid, event, found in procs.executions(cluster.execlog) if found == id]
    assert runs[0] == (victim_pid, "start")
    ends = [pid for pid, event in runs if event == "end"]
    assert len(ends) == 1 and ends[0] != victim_pid
    assert (ends[0], "start") in runs


# ── a Python group and a TypeScript group behind one gateway ────────────────


def test_one_gateway_dispatches_to_a_python_and_a_typescript_group(cluster: Cluster) -> None:
    listing = httpx.get(f"{cluster.gateway}/resonate/functions", timeout=10).json()
    targets = {f["name"]: f["target"] for f in listing["functions"]}
    assert (targets["add"], targets["py_mul"]) == (TS_GROUP, PY_GROUP)

    calls: list[tuple[str, list[Any]]] = [("whoami", []), ("py_whoami", [])]
    for n in range(10):
        calls += [("add", [n, n]), ("py_mul", [n, 3])]
    docs = call_all(cluster.gateway, calls)
    results = [d["result"] for d in docs]
    assert results[:2] == [f"typescript:{TS_GROUP}", f"python:{PY_GROUP}"]
    assert results[2:] == [r for n in range(10) for r in (n + n, n * 3)]

    rejected = post(cluster.gateway, "py_fail", "no such order", wait=30).json()
    assert (rejected["status"], rejected["error"]["message"]) == ("rejected", "no such order")


# ── the wire, checked by the TypeScript SDK's own validators ────────────────


class Recorder(DevServer):
    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[dict[str, Any]] = []

    def deliver(self, message: devserver.Message, *, avoid: devserver.Stream | None = None) -> None:
        self.exchanges.append({"message": message.body})
        super().deliver(message, avoid=avoid)

    def send(
        self, kind: str, data: dict[str, Any], status: int = 200, *, malformed: bool = False
    ) -> dict[str, Any]:
        n = len(self.exchanges)
        request = {"kind": kind, "head": {"corrId": f"c-{n}", "version": PROTOCOL_VERSION}}
        request["data"] = data
        _, body = self.apply(json.dumps(request).encode())
        response: dict[str, Any] = json.loads(body)
        self.exchanges.append({"request": request, "response": response, "malformed": malformed})
        assert response["head"]["status"] == status, (kind, response)
        return response


def sub(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "head": {"corrId": "sub", "version": PROTOCOL_VERSION}, "data": data}


def test_every_response_and_message_passes_the_typescript_sdk_s_validators(node: str) -> None:
    dev = Recorder()
    far = 2**50
    target = {"resonate:target": "poll://any@w", "resonate:branch": "r"}

    def promise(id: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "id": id,
            "timeoutAt": far,
            "param": {"headers": {}, "data": "e30="},
            "tags": tags or {},
        }

    def settle(id: str, state: str = "resolved") -> dict[str, Any]:
        return {"id": id, "state": state, "value": {"headers": {}, "data": "MQ=="}}

    def await_(awaited: str) -> dict[str, Any]:
        return sub("promise.register_callback", {"awaited": awaited, "awaiter": "r"})

    dev.send("promise.get", {"id": "r"}, 404)
    dev.send("promise.create", promise("r", target))  # dispatched: an execute
    dev.send("promise.create", promise("r", target))
    dev.send("promise.create", promise("ext", {"resonate:scope": "global"}))
    dev.send("promise.register_listener", {"awaited": "ext", "address": "poll://uni@gw/me"})
    dev.send("promise.get", {"id": "ext"})
    dev.send("task.get", {"id": "r"})
    dev.send("task.acquire", {"id": "r", "version": 1, "pid": "p", "ttl": 60_000}, 409)
    dev.send("task.acquire", {"id": "r", "version": 0, "pid": "p", "ttl": 60_000})
    dev.send("task.heartbeat", {"pid": "p", "tasks": [{"id": "r", "version": 1}]})
    dev.send(
        "task.fence", {"id": "r", "version": 1, "action": sub("promise.create", promise("r:0"))}
    )
    dev.send(
        "task.fence", {"id": "r", "version": 1, "action": sub("promise.settle", settle("ext"))}
    )
    dev.send("task.fence", {"id": "r", "version": 1, "action": sub("promise.settle", settle("no"))})
    dev.send("task.suspend", {"id": "r", "version": 1, "actions": [await_("r:0")]})
    dev.send("promise.settle", settle("r:0"))  # resumes r: an execute
    dev.send("promise.settle", settle("r:0", "rejected_timedout"), 400, malformed=True)
    dev.send("task.acquire", {"id": "r", "version": 1, "pid": "p", "ttl": 60_000})
    dev.send("task.suspend", {"id": "r", "version": 2, "actions": [await_("ext")]}, 300)
    dev.send("task.release", {"id": "r", "version": 1}, 409)
    dev.send("task.release", {"id": "r", "version": 2})
    dev.send("task.acquire", {"id": "r", "version": 2, "pid": "p", "ttl": 60_000})
    dev.send(
        "task.fulfill", {"id": "r", "version": 3, "action": sub("promise.settle", settle("r"))}
    )
    dev.send(
        "task.fulfill", {"id": "r", "version": 3, "action": sub("promise.settle", settle("r"))}, 409
    )
    dev.send(
        "task.create",
        {"pid": "p", "ttl": 60_000, "action": sub("promise.create", promise("t", target))},
    )
    dev.send(
        "task.create",
        {"pid": "p", "ttl": 60_000, "action": sub("promise.create", promise("r", target))},
    )
    dev.send(
        "task.create",
        {"pid": "q", "ttl": 60_000, "action": sub("promise.create", promise("t", target))},
        409,
    )
    dev.send("task.halt", {"id": "t"}, 501)
    dev.send("promise.search", {"tags": {"resonate:origin": "t"}}, 200)
    schedule = {
        "id": "s",
        "cron": "0 * * * *",
        "promiseId": "s.{{.timestamp}}",
        "promiseTimeout": 60_000,
        "promiseParam": {},
        "promiseTags": {"resonate:target": "poll://any@w"},
    }
    dev.send("schedule.create", schedule)
    dev.send("schedule.get", {"id": "s"})
    dev.send("schedule.search", {})
    dev.send("schedule.delete", {"id": "s"})
    dev.send("schedule.get", {"id": "s"}, 404)

    kinds = [e["message"]["kind"] for e in dev.exchanges if "message" in e]
    assert kinds.count("execute") >= 3 and kinds.count("unblock") == 1
    verdicts = json.loads(
        subprocess.run(
            [node, str(TS_WORKER / "validate.js")],
            input=json.dumps(dev.exchanges).encode(),
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    )
    failed = [
        (verdict["why"], exchange)
        for verdict, exchange in zip(verdicts, dev.exchanges, strict=True)
        if not verdict["ok"]
    ]
    assert failed == []
