"""Gateway and workers as separate processes, on each real backend.

Every test runs twice: on ``resonate-web dev`` and on Postgres through
resonate-pg (a fresh database of the session's private cluster), with the same
assertions. Every process here is real (the dev server, ``resonate-web
worker``, uvicorn gateways), on free 127.0.0.1 ports, started and ended by PID.
Timings are printed (``pytest -s``); the only time bounds asserted are generous
ones that prove liveness.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import procs

pytestmark = pytest.mark.timeout(150)

APP = "tests.support.distributed_app"
LEASE_TTL = "4"  # seconds: a killed worker's task moves on after this


@dataclass
class Cluster:
    """A backend, workers of group ``workers``, and two FastAPI gateways."""

    server: str  # the backend's URL: the dev server's, or a postgresql:// DSN
    logs: Path
    execlog: Path
    gateways: list[str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def worker_env(self, **extra: str) -> dict[str, str]:
        return {
            "RESONATE_WEB_TEST_EXECLOG": str(self.execlog),
            "RESONATE_LEASE_TTL": LEASE_TTL,
            **extra,
        }

    def add_worker(self, group: str = "workers", **env: str) -> subprocess.Popen[bytes]:
        proc = procs.start_worker(
            APP,
            self.server,
            group=group,
            env=self.worker_env(**env),
            log=self.logs / f"worker-{len(self.workers)}.log",
        )
        self.workers.append(proc)
        return proc

    def executions(self) -> list[tuple[int, str, str]]:
        return procs.executions(self.execlog)

    def wait_execution(self, event: str, id: str) -> int:
        return procs.wait_execution(self.execlog, event, id)


@pytest.fixture(scope="module")
def cluster(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("distributed")
    server = backend_url
    c = Cluster(server=server, logs=logs, execlog=logs / "executions.log", gateways=[])
    try:
        c.add_worker()
        c.add_worker()
        with (
            procs.gateway(f"{APP}:app", server, log=logs / "gateway-1.log") as (g1, _),
            procs.gateway(f"{APP}:app", server, log=logs / "gateway-2.log") as (g2, _),
        ):
            c.gateways = [g1, g2]
            procs.wait_streams(server, "gateway", 2)
            yield c
    finally:
        for proc in c.workers:
            procs.stop(proc)


def new_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def post(base: str, fn: str, id: str, *args: Any, wait: float = 0) -> httpx.Response:
    return httpx.post(
        f"{base}/resonate/functions/{fn}",
        params={"id": id, "wait": str(wait)},
        json={"args": list(args)},
        timeout=wait + 10,
    )


def test_two_hundred_invocations_through_the_gateway(cluster: Cluster) -> None:
    ids = {new_id(f"add{i}"): i for i in range(200)}
    gateway = cluster.gateways[0]

    async def run() -> list[httpx.Response]:
        limit = asyncio.Semaphore(50)
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:

            async def one(id: str, i: int) -> httpx.Response:
                async with limit:
                    return await client.post(
                        "/resonate/functions/add",
                        params={"id": id, "wait": "30"},
                        json={"args": [i, 1000]},
                    )

            return await asyncio.gather(*(one(id, i) for id, i in ids.items()))

    started = time.monotonic()
    responses = asyncio.run(run())
    elapsed = time.monotonic() - started

    for (id, i), resp in zip(ids.items(), responses, strict=True):
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert doc["id"] == id
        assert (doc["status"], doc["result"]) == ("resolved", i + 1000)
    runs = Counter(id for _pid, event, id in cluster.executions() if event == "add" and id in ids)
    assert set(runs) == set(ids)
    assert set(runs.values()) == {1}, "an id executed more than once"
    by_worker = Counter(pid for pid, event, id in cluster.executions() if id in ids)
    assert len(by_worker) == 2, f"both workers take work: {by_worker}"
    print(f"\n200 invocations through the gateway: {elapsed:.2f}s, per worker {dict(by_worker)}")


def test_a_killed_worker_s_invocation_completes_on_the_other(cluster: Cluster) -> None:
    gateway = cluster.gateways[0]
    id = new_id("slow")
    assert post(gateway, "slow", id, 2.0, "survived").status_code == 202
    victim_pid = cluster.wait_execution("start", id)
    victim = next(p for p in cluster.workers if p.pid == victim_pid)
    victim.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(10)
    cluster.workers.remove(victim)

    doc = procs.settle(gateway, id)
    kill_to_result = time.monotonic() - killed_at

    assert (doc["status"], doc["result"]) == ("resolved", "survived")
    finished_by = {pid for pid, event, found in cluster.executions() if found == id}
    assert victim_pid in finished_by and len(finished_by) == 2
    ends = [pid for pid, event, found in cluster.executions() if event == "end" and found == id]
    assert len(ends) == 1 and ends[0] != victim_pid
    assert kill_to_result < 30
    print(f"\nkill to result: {kill_to_result:.2f}s (lease {LEASE_TTL}s + the 2s function re-run)")
    cluster.add_worker()  # back to two for the tests that follow


def test_gateway_killed_and_restarted_while_invocations_are_pending(cluster: Cluster) -> None:
    ids = [new_id("restart") for _ in range(5)]
    log = cluster.logs / "gateway-restart.log"
    with procs.gateway(f"{APP}:app", cluster.server, log=log) as (gateway, proc):
        for id in ids:
            resp = post(gateway, "slow", id, 2.0, id)
            assert resp.status_code == 202
            assert resp.headers["location"] == f"/resonate/invocations/{id}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    restarted_at = time.monotonic()
    with procs.gateway(f"{APP}:app", cluster.server, log=log) as (gateway, _):
        for id in ids:
            resp = httpx.get(f"{gateway}/resonate/invocations/{id}", timeout=10)
            assert resp.status_code == 200
            assert resp.json()["id"] == id
        docs = [procs.settle(gateway, id) for id in ids]
    assert [(d["status"], d["result"]) for d in docs] == [("resolved", id) for id in ids]
    ends = Counter(found for _pid, event, found in cluster.executions() if event == "end")
    assert all(ends[id] == 1 for id in ids)
    print(f"\nafter the gateway restart, all settled in {time.monotonic() - restarted_at:.2f}s")


def test_same_id_from_two_gateways_at_once_executes_once(cluster: Cluster) -> None:
    ids = [new_id("twice") for _ in range(10)]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [
                client.post(
                    f"{gateway}/resonate/functions/add",
                    params={"id": id, "wait": "30"},
                    json={"args": [n, n]},
                )
                for n, id in enumerate(ids)
                for gateway in cluster.gateways
            ]
            return await asyncio.gather(*calls)

    responses = asyncio.run(run())
    for n, id in enumerate(ids):
        pair = responses[2 * n : 2 * n + 2]
        assert [r.status_code for r in pair] == [200, 200]
        assert [(r.json()["id"], r.json()["result"]) for r in pair] == [(id, 2 * n)] * 2
    runs = Counter(found for _pid, event, found in cluster.executions() if event == "add")
    assert [runs[id] for id in ids] == [1] * len(ids)


def test_countdown_sleeps_durably_without_holding_a_worker(cluster: Cluster) -> None:
    """While ``countdown`` sleeps no worker holds it: killing every worker of its
    group mid-sleep loses nothing, and a fresh worker finishes it without waiting
    for a lease (60 s here) to run out."""
    group = "sleepers"
    sleeper = cluster.add_worker(group=group, RESONATE_LEASE_TTL="60")
    log = cluster.logs / "gateway-sleepers.log"
    env = {"RESONATE_TARGET": group}
    with procs.gateway(f"{APP}:app", cluster.server, env=env, log=log) as (gateway, _):
        id = new_id("countdown")
        started = time.monotonic()
        assert post(gateway, "countdown", id, 2, 3.0).status_code == 202
        # Once the first sleep's timer promise exists the task suspends; kill
        # the worker well inside that 3 s sleep.
        procs.wait_promise(cluster.server, f"{id}:1")
        time.sleep(0.5)
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait(10)
        cluster.workers.remove(sleeper)
        procs.wait_streams(cluster.server, group, 0)
        cluster.add_worker(group=group, RESONATE_LEASE_TTL="60")
        doc = procs.settle(gateway, id)
        elapsed = time.monotonic() - started
    assert (doc["status"], doc["result"]) == ("resolved", 2)
    assert elapsed < 40, "the task was held by the killed worker until its lease ran out"
    print(f"\ncountdown(2, 3.0) across a worker kill: {elapsed:.2f}s")
