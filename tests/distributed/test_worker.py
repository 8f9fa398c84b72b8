"""The worker runner: loading functions, refusing bad setups, draining on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from resonate_web._core.exposure import load_functions
from resonate_web.settings import ConfigurationError
from tests.support import procs

APP = "tests.support.distributed_app"
GROUP = "drainers"


@dataclass
class Setup:
    server: str
    gateway: str
    logs: Path
    execlog: Path

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        return procs.start_worker(
            APP,
            self.server,
            group=GROUP,
            env={"RESONATE_WEB_TEST_EXECLOG": str(self.execlog), **env},
            log=self.logs / "workers.log",
        )

    def start_slow(self, seconds: float) -> str:
        id = f"drain-{uuid.uuid4().hex[:10]}"
        resp = httpx.post(
            f"{self.gateway}/resonate/functions/slow",
            params={"id": id},
            json={"args": [seconds, id]},
            timeout=10,
        )
        assert resp.status_code == 202, resp.text
        return id

    def events(self, id: str) -> list[tuple[int, str]]:
        return [(pid, ev) for pid, ev, found in procs.executions(self.execlog) if found == id]


@pytest.fixture(scope="module")
def setup(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A gateway dispatching to ``drainers`` on each real backend (dev server, Postgres)."""
    logs = tmp_path_factory.mktemp("worker")
    env = {"RESONATE_TARGET": GROUP}
    log = logs / "gateway.log"
    with procs.gateway(f"{APP}:app", backend_url, env=env, log=log) as (gateway, _):
        yield Setup(backend_url, gateway, logs, logs / "executions.log")


def test_sigterm_lets_the_running_task_finish_then_exits_0(setup: Setup) -> None:
    worker = setup.worker(RESONATE_SHUTDOWN_TIMEOUT="20")
    try:
        id = setup.start_slow(1.5)
        procs.wait_execution(setup.execlog, "start", id)
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(25) == 0
        took = time.monotonic() - signalled
    finally:
        procs.stop(worker)
    assert setup.events(id) == [(worker.pid, "start"), (worker.pid, "end")]
    doc = procs.settle(setup.gateway, id)
    assert (doc["status"], doc["result"]) == ("resolved", id)
    if not procs.is_postgres(setup.server):
        assert procs.streams(setup.server).get(GROUP, 0) == 0
    print(f"\ndrain with a task finishing: exit {took:.2f}s after SIGTERM")


def test_sigterm_releases_a_task_that_outlives_the_timeout(setup: Setup) -> None:
    """The lease is 60 s: the task moves to the next worker at once only because
    the draining worker released it."""
    first = setup.worker(RESONATE_SHUTDOWN_TIMEOUT="1", RESONATE_LEASE_TTL="60")
    try:
        id = setup.start_slow(3.0)
        procs.wait_execution(setup.execlog, "start", id)
        signalled = time.monotonic()
        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 0
        exited = time.monotonic() - signalled
    finally:
        procs.stop(first)
    second = setup.worker(RESONATE_LEASE_TTL="60")
    try:
        doc = procs.settle(setup.gateway, id)
        to_result = time.monotonic() - signalled
    finally:
        procs.stop(second)
    assert (doc["status"], doc["result"]) == ("resolved", id)
    assert setup.events(id) == [
        (first.pid, "start"),
        (second.pid, "start"),
        (second.pid, "end"),
    ]
    assert to_result < 40, "the task waited for its lease instead of being released"
    print(f"\nrelease on drain: exit {exited:.2f}s, result {to_result:.2f}s after SIGTERM")


def test_a_second_signal_skips_the_wait(setup: Setup) -> None:
    worker = setup.worker(RESONATE_SHUTDOWN_TIMEOUT="60")
    try:
        id = setup.start_slow(30.0)
        procs.wait_execution(setup.execlog, "start", id)
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        worker.send_signal(signal.SIGINT)
        assert worker.wait(15) == 0
        assert time.monotonic() - signalled < 15
    finally:
        procs.stop(worker)


def test_sigterm_stops_a_worker_still_waiting_for_its_backend() -> None:
    nowhere = f"http://127.0.0.1:{procs.free_port()}"  # nothing listens there
    argv = procs.python_module("resonate_web.cli", "worker", "examples.gateway_worker.functions")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESONATE_")}
    env.update(PYTHONPATH=procs.PYTHONPATH, RESONATE_URL=nowhere, RESONATE_BACKEND_TIMEOUT="0.5")
    proc = subprocess.Popen(argv, env=env, cwd=procs.ROOT, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the SDK retries the connection; the worker says so
            if b"waiting for the Resonate backend" in line:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        procs.stop(proc, signal.SIGKILL)


def test_a_worker_without_a_shared_backend_is_refused() -> None:
    argv = procs.python_module("resonate_web.cli", "worker", "examples.gateway_worker.functions")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESONATE_")}
    env["PYTHONPATH"] = procs.PYTHONPATH
    out = subprocess.run(argv, env=env, cwd=procs.ROOT, capture_output=True, timeout=60)
    assert out.returncode == 2
    assert b"needs a shared backend" in out.stderr


def test_a_module_that_does_not_import_is_a_clear_error() -> None:
    argv = procs.python_module(
        "resonate_web.cli", "worker", "no_such_module", "--url", "http://127.0.0.1:1"
    )
    out = subprocess.run(argv, cwd=procs.ROOT, capture_output=True, timeout=60, text=True)
    assert out.returncode == 2
    assert "cannot import no_such_module" in out.stderr and "Traceback" not in out.stderr


def test_cli_help_says_the_dev_server_is_for_development() -> None:
    argv = [sys.executable, "-m", "resonate_web.cli", "dev", "--help"]
    out = subprocess.run(argv, cwd=procs.ROOT, capture_output=True, timeout=60, text=True)
    assert out.returncode == 0
    assert "in memory" in out.stdout and "not for\nproduction" in out.stdout


def test_load_functions() -> None:
    from examples.gateway_worker import functions as example

    assert load_functions("examples.gateway_worker.functions") is example.functions
    assert load_functions("examples.gateway_worker.functions:functions") is example.functions
    with pytest.raises(ConfigurationError, match=r"is not a resonate_web\.Functions"):
        load_functions("examples.gateway_worker.functions:add")
    with pytest.raises(ConfigurationError, match="found 0 Functions"):
        load_functions("resonate_web.settings")
    with pytest.raises(ModuleNotFoundError):
        load_functions("no_such_module_here")


def test_a_task_for_a_function_the_worker_lacks_names_the_group_to_change(
    tmp_path: Path,
) -> None:
    """Two apps whose workers share the default group on one server: a worker sent
    the other app's function says why, and which setting gives each app its own group."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from resonate_web import Functions
    from resonate_web.fastapi import ResonateRouter

    other_app = Functions()
    other_app.expose_remote("other_apps_report", target="workers")
    log = tmp_path / "worker.log"
    with procs.dev_server() as url:
        worker = procs.start_worker("examples.gateway_worker.functions", url, log=log)
        try:
            app = FastAPI()
            app.include_router(ResonateRouter(other_app, url=url))
            with TestClient(app) as client:
                started = client.post("/resonate/functions/other_apps_report", json={})
                assert started.status_code == 202, started.text
                deadline = time.monotonic() + 60
                while "a function it does not have" not in log.read_text():
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
        finally:
            procs.stop(worker)
    said = log.read_text()
    assert "'other_apps_report'" in said and "group 'workers'" in said
    assert "--group NAME" in said and "RESONATE_TARGET=NAME" in said
    assert said.count("a function it does not have") == 1  # once, however often it is sent
