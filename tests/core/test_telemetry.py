"""OpenTelemetry across real processes: a uvicorn gateway and a ``resonate-web worker``
on the dev server, each exporting spans and metrics to JSON-lines files
(``tests/support/traced.py``). One trace runs from the HTTP request to the function.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import procs

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

pytestmark = pytest.mark.timeout(120)
MODULE = "tests.support.traced"


@dataclass
class Deployment:
    base: str
    gateway_pid: int
    worker_pid: int
    dir: Path

    def rows(self, name: str) -> list[dict[str, Any]]:
        path = self.dir / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def wait_for[T](self, what: str, find: Callable[[], T | None], timeout: float = 30) -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = find()
            if found:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"no {what} within {timeout}s")

    def span(self, name: str, id: str) -> dict[str, Any] | None:
        for row in self.rows("spans.jsonl"):
            if row["name"] == name and row["attributes"].get("resonate.invocation.id") == id:
                return row
        return None


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    dir = tmp_path_factory.mktemp("traced")
    env = {"TRACED_DIR": str(dir)}
    with procs.dev_server(log=dir / "server.log") as server:
        worker = procs.start_worker(MODULE, server, env=env, log=dir / "worker.log")
        try:
            app = f"{MODULE}:app"
            with procs.gateway(app, server, env=env, log=dir / "gateway.log") as (base, gw):
                yield Deployment(base, gw.pid, worker.pid, dir)
        finally:
            procs.stop(worker)


def call(base: str, name: str, args: list[Any], id: str) -> dict[str, Any]:
    resp = httpx.post(
        f"{base}/resonate/functions/{name}",
        params={"id": id, "wait": "20"},
        json={"args": args},
        timeout=40,
    )
    resp.raise_for_status()
    doc: dict[str, Any] = resp.json()
    if doc["status"] == "pending":
        doc = procs.settle(base, id)
    return doc


def test_one_trace_from_the_request_to_the_worker(deployment: Deployment) -> None:
    id = "traced-" + uuid.uuid4().hex[:10]
    assert call(deployment.base, "greet", ["ada"], id)["result"] == "hello ada"

    work = deployment.wait_for(
        "function span", lambda: deployment.span("resonate.function greet", id)
    )
    route = deployment.wait_for(
        "route span", lambda: deployment.span("resonate POST /functions/{name}", id)
    )
    assert route["pid"] == deployment.gateway_pid
    assert route["attributes"]["resonate.function"] == "greet"
    assert route["attributes"]["http.response.status_code"] == 200
    assert work["pid"] == deployment.worker_pid
    assert work["trace_id"] == route["trace_id"]
    assert work["parent_id"] == route["span_id"]
    assert work["attributes"]["resonate.function"] == "greet"

    # Reading it back is a span of its own, naming the invocation.
    httpx.get(f"{deployment.base}/resonate/invocations/{id}").raise_for_status()
    read = deployment.wait_for(
        "status span", lambda: deployment.span("resonate GET /invocations/{id}", id)
    )
    assert read["trace_id"] != route["trace_id"]


def test_a_failing_function_marks_its_span(deployment: Deployment) -> None:
    id = "traced-fail-" + uuid.uuid4().hex[:10]
    assert call(deployment.base, "fail", ["no disk"], id)["status"] == "rejected"
    work = deployment.wait_for(
        "function span", lambda: deployment.span("resonate.function fail", id)
    )
    route = deployment.span("resonate POST /functions/{name}", id)
    assert route is not None and work["trace_id"] == route["trace_id"]
    assert work["status"] == "ERROR"


def test_log_records_carry_the_invocation_id(deployment: Deployment) -> None:
    id = "traced-log-" + uuid.uuid4().hex[:10]
    call(deployment.base, "greet", ["grace"], id)
    log = deployment.dir / f"log-{deployment.worker_pid}.txt"
    deployment.wait_for(
        "log line",
        lambda: log.exists() and f"{id} traced greeting grace" in log.read_text(),
    )
    # In the gateway, a record logged while a route about the invocation runs.
    httpx.get(f"{deployment.base}/resonate/invocations/{id}").raise_for_status()
    httpx.get(f"{deployment.base}/resonate/functions").raise_for_status()
    gateway_log = (deployment.dir / f"log-{deployment.gateway_pid}.txt").read_text()
    assert f"{id} traced request status" in gateway_log
    assert "- traced request list_functions" in gateway_log  # about no invocation


def test_counters_of_started_and_settled(deployment: Deployment) -> None:
    id = "traced-count-" + uuid.uuid4().hex[:10]
    call(deployment.base, "greet", ["linus"], id)

    def latest(name: str, **attributes: str) -> float | None:
        values = [
            row["value"]
            for row in deployment.rows("metrics.jsonl")
            if row["name"] == name
            and row["pid"] == deployment.gateway_pid
            and all(row["attributes"].get(k) == v for k, v in attributes.items())
        ]
        return values[-1] if values else None

    deployment.wait_for(
        "started count",
        lambda: (
            (latest("resonate_web.invocations.started", **{"resonate.function": "greet"}) or 0) >= 1
        ),
    )
    deployment.wait_for(
        "settled count",
        lambda: (
            (
                latest(
                    "resonate_web.invocations.settled",
                    **{"resonate.function": "greet", "resonate.status": "resolved"},
                )
                or 0
            )
            >= 1
        ),
    )
    assert latest("resonate_web.waiting") is not None


def test_invocation_filter_outside_and_inside() -> None:
    from resonate_web._core import telemetry

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    telemetry.InvocationFilter().filter(record)
    assert record.invocation_id == "-"
    with telemetry.invocation("inv-1"):
        telemetry.InvocationFilter().filter(record)
    assert record.invocation_id == "inv-1"


def test_the_console_set_up_in_the_docs_runs_as_written(tmp_path: Path) -> None:
    text = (procs.ROOT / "docs" / "observability.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    (tmp_path / "otel_app.py").write_text(block)
    log = tmp_path / "out.log"
    id = "docs-otel-" + uuid.uuid4().hex[:8]
    with procs.uvicorn("otel_app:app", cwd=tmp_path, log=log) as base:
        resp = httpx.post(
            f"{base}/resonate/functions/add",
            params={"id": id, "wait": "20"},
            json={"args": [1, 2]},
            timeout=40,
        )
        assert resp.json()["result"] == 3
    out = log.read_text()  # the server has stopped: its spans are flushed
    assert f"[{id}] orders: adding 1 and 2" in out
    traces = {
        name: re.search(rf'"name": "{re.escape(name)}",\s*"context": {{\s*"trace_id": "(\w+)"', out)
        for name in ("resonate.function add", "resonate POST /functions/{name}")
    }
    assert all(traces.values()), out[-2000:]
    ids = {match.group(1) for match in traces.values() if match}
    assert len(ids) == 1
