"""Flow control holds across every process sharing a backend: the embedded one
(functions inline in the gateway), ``resonate-web dev`` with three workers, and
Postgres with two gateways and three workers.

The functions count for themselves (tests/support/flow_app.py logs each body's
start and end): never more than the limit at once per key, first in first out
per key, every invocation finishing; a worker killed while holding a slot frees
it; a rate limit spreads starts over windows; a burst of debounced starts runs
once with the last arguments; a higher priority overtakes waiting ones.
"""

from __future__ import annotations

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

from tests.support import procs

pytestmark = [pytest.mark.timeout(240), pytest.mark.multiprocess]

APP = "tests.support.flow_app"
LEASE = 2.0  # seconds: a killed worker's slot lapses after it


@dataclass
class Deployment:
    gateways: list[str]
    execlog: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def events(self) -> list[tuple[int, str, str, str, float]]:
        """``(pid, event, id, detail, time)`` per body start and end, in the order logged."""
        if not self.execlog.exists():
            return []
        rows = []
        for line in self.execlog.read_text().splitlines():
            pid, event, id, detail, at = line.split(" ")
            rows.append((int(pid), event, id, detail, float(at)))
        return rows

    def of(self, prefix: str) -> list[tuple[int, str, str, str, float]]:
        return [e for e in self.events() if e[2].startswith(prefix)]


@pytest.fixture(scope="module", params=["embedded", "dev", "pg"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    logs = tmp_path_factory.mktemp(f"flow-{request.param}")
    execlog = logs / "executions.log"
    env = {"RESONATE_LEASE_TTL": str(LEASE), "RESONATE_WEB_TEST_EXECLOG": str(execlog)}
    if request.param == "embedded":
        with procs.uvicorn(f"{APP}:app", env=env, log=logs / "gateway.log") as base:
            yield Deployment([base], execlog)
        return
    if request.param == "pg":
        server = request.getfixturevalue("pg_dsn")
        gateways = 2
    else:
        server = request.getfixturevalue("dev_url")
        gateways = 1
    workers = []
    try:
        for n in range(3):
            workers.append(procs.start_worker(APP, server, env=env, log=logs / f"worker-{n}.log"))
        with procs.gateway(f"{APP}:app", server, env=env, log=logs / "gateway-0.log") as (a, _):
            if gateways == 1:
                yield Deployment([a], execlog, workers)
                return
            with procs.gateway(f"{APP}:app", server, env=env, log=logs / "gateway-1.log") as (b, _):
                yield Deployment([a, b], execlog, workers)
    finally:
        for worker in workers:
            procs.stop(worker)


@pytest.fixture(scope="module")
def dev_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with procs.dev_server(log=tmp_path_factory.mktemp("dev") / "dev.log") as url:
        yield url


def start(base: str, fn: str, id: str, *args: Any, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{base}/resonate/functions/{fn}",
        params={"id": id},
        json={"args": list(args), **body},
        timeout=30,
    )


def started(base: str, fn: str, id: str, *args: Any, **body: Any) -> str:
    resp = start(base, fn, id, *args, **body)
    assert resp.status_code in (200, 201, 202), resp.text
    return str(resp.json()["id"])


def document(base: str, id: str) -> dict[str, Any]:
    resp = httpx.get(f"{base}/resonate/invocations/{id}", timeout=30)
    resp.raise_for_status()
    doc: dict[str, Any] = resp.json()
    return doc


def most_at_once(events: list[tuple[int, str, str, str, float]], key: str) -> int:
    running = peak = 0
    for _, event, _, detail, _ in events:
        if detail != key:
            continue
        running += 1 if event == "start" else -1
        peak = max(peak, running)
    return peak


def test_a_concurrency_key_holds_per_key_first_in_first_out(deployment: Deployment) -> None:
    """20 starts over 3 customers, through every gateway, each body 2 s: never more
    than 2 of a customer run at once, each customer's begin in the order they were
    started, and every one finishes."""
    run = uuid.uuid4().hex[:6]
    customers = ["acme", "globex", "initech"]
    ids = [
        started(
            deployment.gateways[n % len(deployment.gateways)],
            "export",
            f"x{run}-{n:03d}",
            customers[n % 3],
            n,
            2.0,
        )
        for n in range(20)
    ]
    created = {}
    for id in ids:
        doc = procs.settle(deployment.gateways[0], id, timeout=180)
        assert doc["status"] == "resolved", doc
        created[id] = (doc["created_at"], id)
    events = deployment.of(f"x{run}-")
    assert sorted(e[2] for e in events if e[1] == "end") == sorted(ids)
    peaks = {customer: most_at_once(events, customer) for customer in customers}
    assert all(peak <= 2 for peak in peaks.values()), peaks
    assert max(peaks.values()) == 2, peaks  # the limit was reached, and held
    for customer in customers:
        begun = [e[2] for e in events if e[1] == "start" and e[3] == customer]
        assert begun == sorted(begun, key=created.__getitem__), f"{customer}: {begun}"


def test_a_waiting_invocation_says_what_it_waits_for(deployment: Deployment) -> None:
    run = uuid.uuid4().hex[:6]
    base = deployment.gateways[-1]
    blocker = started(base, "ranked", f"w{run}-0", 0, 3.0)
    waiting = started(base, "ranked", f"w{run}-1", 1)
    for _ in range(600):
        doc = document(base, waiting)
        if doc.get("waiting_for"):
            break
        time.sleep(0.05)
    assert doc["status"] == "pending"
    assert doc["waiting_for"] == "concurrency"
    listed = httpx.get(
        f"{base}/resonate/invocations",
        params={"function": "ranked", "waiting_for": "concurrency"},
        timeout=30,
    ).json()
    assert waiting in [row["id"] for row in listed["invocations"]]
    assert blocker not in [row["id"] for row in listed["invocations"]]
    line = httpx.get(f"{base}/resonate/functions/ranked/stats", timeout=30).json()["flow"]
    assert line["concurrency"] >= 1 and line["running"] == 1
    described = httpx.get(f"{base}/resonate/functions", timeout=30).json()["functions"]
    ranked = next(f for f in described if f["name"] == "ranked")
    assert ranked["flow"] == {"concurrency": {"limit": 1, "key": None}}
    assert procs.settle(base, waiting, timeout=120)["status"] == "resolved"
    assert "waiting_for" not in document(base, waiting)


def test_a_higher_priority_overtakes_waiting_ones(deployment: Deployment) -> None:
    run = uuid.uuid4().hex[:6]
    base = deployment.gateways[0]
    ids = [started(base, "ranked", f"p{run}-0", 0, 3.0)]
    ids.append(started(base, "ranked", f"p{run}-1", 1))
    ids.append(started(base, "ranked", f"p{run}-2", 2))
    ids.append(started(deployment.gateways[-1], "ranked", f"p{run}-3", 3, priority=10))
    for id in ids:
        assert procs.settle(base, id, timeout=120)["status"] == "resolved"
    begun = [e[3] for e in deployment.of(f"p{run}-") if e[1] == "start"]
    assert begun == ["0", "3", "1", "2"]


def test_a_rate_limit_spreads_starts_over_windows(deployment: Deployment) -> None:
    run = uuid.uuid4().hex[:6]
    ids = [
        started(deployment.gateways[n % len(deployment.gateways)], "paced", f"r{run}-{n:02d}", n)
        for n in range(20)
    ]
    for id in ids:
        assert procs.settle(deployment.gateways[0], id, timeout=120)["status"] == "resolved"
    times = sorted(e[4] for e in deployment.of(f"r{run}-") if e[1] == "start")
    assert len(times) == 20
    # Five a second: the sixteenth cannot begin before three windows have passed.
    assert times[15] - times[0] >= 3 * 0.9


def test_a_rate_limit_can_refuse_with_retry_after(deployment: Deployment) -> None:
    account = f"acct-{uuid.uuid4().hex[:6]}"
    base = deployment.gateways[0]
    first = [start(base, "charge", f"c-{account}-{n}", account) for n in range(2)]
    assert all(r.status_code in (200, 201, 202) for r in first), [r.text for r in first]
    refused = start(deployment.gateways[-1], "charge", f"c-{account}-2", account)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith(":rate-limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Nothing half-done: the refused id names no invocation.
    assert httpx.get(f"{base}/resonate/invocations/c-{account}-2", timeout=30).status_code == 404
    # A replay of an admitted start is not a new start.
    again = start(base, "charge", f"c-{account}-0", account)
    assert again.status_code in (200, 201, 202), again.text
    # Another account has its own window.
    other = start(base, "charge", f"c-{account}-other", account + "-b")
    assert other.status_code in (200, 201, 202), other.text


def test_a_burst_of_debounced_starts_runs_once_with_the_last_arguments(
    deployment: Deployment,
) -> None:
    run = uuid.uuid4().hex[:6]
    doc = f"doc-{run}"
    answered = {
        started(deployment.gateways[v % len(deployment.gateways)], "reindex", f"d{run}-{v}", doc, v)
        for v in range(1, 6)
    }
    assert len(answered) == 1, answered
    (id,) = answered
    pending = document(deployment.gateways[0], id)
    assert pending["status"] == "resolved" or pending.get("waiting_for") == "debounce"
    settled = procs.settle(deployment.gateways[0], id, timeout=120)
    assert (settled["status"], settled["result"]) == ("resolved", 5)
    runs = [e[3] for e in deployment.events() if e[1] == "start" and e[3].startswith(doc)]
    assert runs == [f"{doc}@5"]
    # After it ran, the next start opens a new one.
    later = started(deployment.gateways[0], "reindex", f"d{run}-later", doc, 6)
    assert later != id
    assert procs.settle(deployment.gateways[0], later, timeout=120)["result"] == 6


@pytest.mark.parametrize("deployment", ["dev", "pg"], indirect=True)
def test_a_worker_killed_while_holding_a_slot_frees_it(deployment: Deployment) -> None:
    """The holder's worker dies mid-body; the holder is canceled (so it does not run
    again and take the slot back first): the next in line runs once the dead
    worker's slot lapses with its lease."""
    run = uuid.uuid4().hex[:6]
    base = deployment.gateways[0]
    holder = started(base, "exclusive", f"k{run}-0", 600.0)
    for _ in range(1200):
        begun = [e for e in deployment.of(f"k{run}-") if e[1] == "start"]
        if begun:
            break
        time.sleep(0.05)
    victim = next(w for w in deployment.workers if w.pid == begun[0][0])
    waiting = started(base, "exclusive", f"k{run}-1", 0.1)
    for _ in range(600):
        if document(base, waiting).get("waiting_for") == "concurrency":
            break
        time.sleep(0.05)
    assert document(base, waiting)["waiting_for"] == "concurrency"
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    deployment.workers.remove(victim)
    canceled = httpx.post(f"{base}/resonate/invocations/{holder}/cancel", timeout=30)
    assert canceled.json()["status"] == "canceled"
    assert procs.settle(base, waiting, timeout=120)["status"] == "resolved"
    starts = [e[2] for e in deployment.of(f"k{run}-") if e[1] == "start"]
    assert starts == [holder, waiting]


def test_a_canceled_invocation_leaves_the_line(deployment: Deployment) -> None:
    """Canceled while it waits, an invocation never runs and holds nobody up; canceled
    during its quiet period, a debounced one is replaced by the next start."""
    run = uuid.uuid4().hex[:6]
    base = deployment.gateways[0]
    blocker = started(base, "ranked", f"q{run}-0", 0, 3.0)
    doomed = started(base, "ranked", f"q{run}-1", 1)
    after = started(base, "ranked", f"q{run}-2", 2)
    for _ in range(600):
        if document(base, doomed).get("waiting_for") == "concurrency":
            break
        time.sleep(0.05)
    canceled = httpx.post(f"{base}/resonate/invocations/{doomed}/cancel", timeout=30)
    assert canceled.json()["status"] == "canceled"
    for id in (blocker, after):
        assert procs.settle(base, id, timeout=120)["status"] == "resolved"
    begun = [e[3] for e in deployment.of(f"q{run}-") if e[1] == "start"]
    assert begun == ["0", "2"]

    doc = f"gone-{run}"
    first = started(base, "reindex", f"g{run}-1", doc, 1)
    httpx.post(f"{base}/resonate/invocations/{first}/cancel", timeout=30)
    second = started(base, "reindex", f"g{run}-2", doc, 2)
    assert second != first
    assert procs.settle(base, second, timeout=120)["result"] == 2
