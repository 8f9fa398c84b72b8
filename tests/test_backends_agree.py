"""Leases and timeouts behave alike on every backend: the embedded one (functions
inline in the gateway), ``resonate-web dev`` and Postgres (resonate-pg), each with a
worker in its own process.

A body that runs longer than two leases runs once, in a thread or on the loop,
as a function or as a step: its lease is renewed for as long as it runs. A
promise nobody settles times out where it is awaited, with an error that says
so, and an invocation past its timeout answers its long-poll as ``timedout``.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import procs

pytestmark = [pytest.mark.timeout(180), pytest.mark.multiprocess]

APP = "tests.support.agreeing_app"
LEASE = 2.0  # seconds; every body below runs for more than two of them
BODY = 2.5 * LEASE


@dataclass
class Deployment:
    gateway: str
    execlog: Path

    def executions(self, id: str) -> list[tuple[int, str]]:
        return [(pid, event) for pid, event, found in procs.executions(self.execlog) if found == id]


@pytest.fixture(scope="module", params=["embedded", "dev", "pg"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    logs = tmp_path_factory.mktemp(f"agree-{request.param}")
    execlog = logs / "executions.log"
    env = {"RESONATE_LEASE_TTL": str(LEASE), "RESONATE_WEB_TEST_EXECLOG": str(execlog)}
    if request.param == "embedded":
        with procs.uvicorn(f"{APP}:app", env=env, log=logs / "gateway.log") as base:
            yield Deployment(base, execlog)
        return
    server = (
        request.getfixturevalue("pg_dsn")
        if request.param == "pg"
        else request.getfixturevalue("dev_url")
    )
    worker: subprocess.Popen[bytes] = procs.start_worker(
        APP, server, env=env, log=logs / "worker.log"
    )
    try:
        with procs.gateway(f"{APP}:app", server, env=env, log=logs / "gateway.log") as (base, _):
            yield Deployment(base, execlog)
    finally:
        procs.stop(worker)


@pytest.fixture(scope="module")
def dev_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with procs.dev_server(log=tmp_path_factory.mktemp("dev") / "dev.log") as url:
        yield url


def start(base: str, fn: str, *args: Any) -> str:
    id = f"{fn}-{uuid.uuid4().hex[:10]}"
    resp = httpx.post(
        f"{base}/resonate/functions/{fn}", params={"id": id}, json={"args": list(args)}, timeout=10
    )
    assert resp.status_code == 202, resp.text
    return id


@pytest.mark.parametrize(("fn", "result"), [("blocking", "blocked"), ("awaiting", "awaited")])
def test_a_body_longer_than_two_leases_runs_once(
    deployment: Deployment, fn: str, result: str
) -> None:
    id = start(deployment.gateway, fn, BODY)
    doc = procs.settle(deployment.gateway, id)
    assert (doc["status"], doc["result"]) == ("resolved", result)
    assert [event for _, event in deployment.executions(id)] == ["start", "end"]


def test_a_step_longer_than_two_leases_runs_once(deployment: Deployment) -> None:
    id = start(deployment.gateway, "stepping", BODY)
    doc = procs.settle(deployment.gateway, id)
    assert (doc["status"], doc["result"]) == ("resolved", "stepped")
    assert [event for _, event in deployment.executions(id)] == ["start", "step"]


def test_a_promise_nobody_settles_times_out_where_it_is_awaited(deployment: Deployment) -> None:
    id = start(deployment.gateway, "unanswered")
    doc = procs.settle(deployment.gateway, id)
    assert doc["status"] == "resolved"
    assert "timed out" in doc["result"], doc["result"]


def test_an_invocation_past_its_timeout_answers_its_long_poll(deployment: Deployment) -> None:
    """The body outlives the 1-s timeout by far: the long-poll answers ``timedout``
    when the invocation times out, not when the body ends or the wait runs out."""
    id = start(deployment.gateway, "overdue", 60)
    resp = httpx.get(
        f"{deployment.gateway}/resonate/invocations/{id}", params={"wait": "30"}, timeout=40
    )
    assert resp.json()["status"] == "timedout"
