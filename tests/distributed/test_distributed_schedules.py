"""Schedules across processes on the dev server: its clock fires the ticks, workers
run them, a gateway serves the routes.

Every process is real (``resonate-web dev``, ``resonate-web worker``, a uvicorn
gateway), on free 127.0.0.1 ports, ended by PID. Ticks come within seconds
through the sixth (seconds) cron field the test apps accept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import procs

pytestmark = pytest.mark.timeout(150)

APP = "tests.support.scheduled_app"
LEASE_TTL = "4"  # seconds: a killed worker's task moves on after this
YEARLY = "0 0 1 1 *"


@dataclass
class Cluster:
    server: str
    gateway: str
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def execlog(self) -> Path:
        return self.logs / "executions.log"

    def add_worker(self, log: Path | None = None, **env: str) -> subprocess.Popen[bytes]:
        log = log or self.logs / f"worker-{uuid.uuid4().hex[:6]}.log"
        env = {
            "RESONATE_WEB_TEST_EXECLOG": str(self.execlog),
            "RESONATE_LEASE_TTL": LEASE_TTL,
            **env,
        }
        proc = procs.start_worker(APP, self.server, env=env, log=log)
        self.workers.append(proc)
        return proc

    def executions(self) -> list[tuple[int, str, str]]:
        return procs.executions(self.execlog)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("schedules")
    with procs.dev_server(log=logs / "dev.log") as server:
        # Two workers and a gateway start at once: each declares the schedule of `beat`.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESONATE_")}
        env.update(
            PYTHONPATH=procs.PYTHONPATH,
            RESONATE_URL=server,
            RESONATE_LEASE_TTL=LEASE_TTL,
            RESONATE_WEB_TEST_EXECLOG=str(logs / "executions.log"),
        )
        workers = [
            subprocess.Popen(
                procs.python_module("resonate_web.cli", "worker", APP, "--group", "workers"),
                env=env,
                cwd=procs.ROOT,
                stdout=open(logs / f"worker-start-{n}.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            for n in range(2)
        ]
        c = Cluster(server=server, gateway="", logs=logs, workers=workers)
        try:
            with procs.gateway(f"{APP}:app", server, log=logs / "gateway.log") as (gateway, _):
                c.gateway = gateway
                procs.wait_streams(server, "workers", 2)
                yield c
        finally:
            for proc in c.workers:
                procs.stop(proc)


def post_schedule(base: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{base}/resonate/schedules", json=body, timeout=10)


def schedule_doc(base: str, id: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/resonate/schedules/{id}", timeout=10)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def test_processes_starting_at_once_declare_the_schedule_once(cluster: Cluster) -> None:
    deadline = time.monotonic() + 30
    while True:
        listed = httpx.get(f"{cluster.gateway}/resonate/schedules", timeout=10).json()
        beats = [s for s in listed["schedules"] if s["function"] == "beat"]
        if beats or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(s["id"], s["cron"], s["args"]) for s in beats] == [("beat", YEARLY, [])]


def test_ticks_fire_on_the_dev_server_and_run_once_each_on_workers(cluster: Cluster) -> None:
    id = "every-second-" + uuid.uuid4().hex[:6]
    body = {"id": id, "cron": "* * * * * *", "function": "add", "args": [2, 3]}
    assert post_schedule(cluster.gateway, body).status_code == 201
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recent = schedule_doc(cluster.gateway, id)["recent"]
            settled = [t for t in recent if t["status"] != "pending"]
            if len(settled) >= 3:
                break
            time.sleep(0.2)
    finally:
        assert httpx.delete(f"{cluster.gateway}/resonate/schedules/{id}").status_code == 204
    assert len(settled) >= 3, recent
    assert all((t["status"], t["result"]) == ("resolved", 5) for t in settled)
    runs = Counter(tick for _pid, event, tick in cluster.executions() if event == "add")
    ran_by = {pid for pid, event, tick in cluster.executions() if tick.startswith(id)}
    assert all(runs[t["id"]] == 1 for t in settled), runs
    assert ran_by <= {w.pid for w in cluster.workers}, "ticks run on the workers"


def _once_at(at: datetime) -> str:
    """A cron (with seconds) that matches ``at`` and then not for a day."""
    return f"{at.minute} {at.hour} * * * {at.second}"


def test_a_worker_killed_mid_tick_the_tick_still_resolves_once(cluster: Cluster) -> None:
    id = "once-" + uuid.uuid4().hex[:6]
    at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    tick = f"{id}-{int(at.timestamp() * 1000)}"
    body = {"id": id, "cron": _once_at(at), "function": "slow", "args": [3.0, "survived"]}
    assert post_schedule(cluster.gateway, body).status_code == 201
    try:
        victim_pid = procs.wait_execution(cluster.execlog, "start", tick)
        victim = next(p for p in cluster.workers if p.pid == victim_pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        cluster.workers.remove(victim)
        doc = procs.settle(cluster.gateway, tick)
        assert [t["id"] for t in schedule_doc(cluster.gateway, id)["recent"]] == [tick]
    finally:
        httpx.delete(f"{cluster.gateway}/resonate/schedules/{id}")
    assert (doc["status"], doc["result"]) == ("resolved", "survived")
    starts = [
        pid for pid, event, found in cluster.executions() if (event, found) == ("start", tick)
    ]
    ends = [pid for pid, event, found in cluster.executions() if (event, found) == ("end", tick)]
    assert starts[0] == victim_pid and len(ends) == 1 and ends[0] != victim_pid
    cluster.add_worker()  # back to two


def test_a_changed_declaration_replaces_the_schedule_on_start_up(cluster: Cluster) -> None:
    log = cluster.logs / "worker-changed.log"
    proc = cluster.add_worker(log, TEST_BEAT_CRON="0 0 2 1 *")
    deadline = time.monotonic() + 30
    while schedule_doc(cluster.gateway, "beat")["cron"] != "0 0 2 1 *":
        assert time.monotonic() < deadline, "the changed declaration was not stored"
        time.sleep(0.1)
    procs.stop(proc)
    cluster.workers.remove(proc)
    assert "schedule beat differs from its declaration in code" in log.read_text()
    assert "cron '0 0 1 1 *' -> '0 0 2 1 *'" in log.read_text()
