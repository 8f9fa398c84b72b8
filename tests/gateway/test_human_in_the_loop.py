"""Human in the loop end to end, and what a status read costs the backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from resonate_web import Settings
from resonate_web._core import sdk as _sdk
from resonate_web.client import Client, Rejected
from resonate_web.fastapi import ResonateRouter
from tests.support import procs, servers
from tests.support.functions import build

APP = "tests.support.distributed_app:app"
WORKERS = "tests.support.distributed_app"


@pytest.fixture(scope="module")
def deployment(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway and a worker on each real shared backend (dev server, Postgres)."""
    logs = tmp_path_factory.mktemp("hitl")
    worker = procs.start_worker(WORKERS, backend_url, log=logs / "worker.log")
    try:
        with procs.gateway(APP, backend_url, log=logs / "gateway.log") as (base, _):
            yield base
    finally:
        procs.stop(worker)


@pytest.mark.multiprocess
def test_the_approval_loop_over_http(deployment: str) -> None:
    with Client(deployment) as api:
        started = api.start("approval", "ship order 7?", id=f"ap-{uuid.uuid4().hex[:8]}")
        promise = servers.awaited_promise(api, started.id)
        assert api.promise(promise).awaited_by == started.id
        assert api.resolve(promise, {"approved": True}).status == "resolved"
        assert api.wait(started.id, timeout=60) == {"approved": True}
        assert api.tree(started.id).children[0].kind == "promise"

        refused = api.start("approval", "ship order 8?")
        promise = servers.awaited_promise(api, refused.id)
        api.reject(promise, {"reason": "out of stock"})
        with pytest.raises(Rejected) as rejected:
            api.wait(refused.id, timeout=60)
        assert "out of stock" in rejected.value.message


@pytest.mark.multiprocess
def test_list_tree_and_cancel_over_http(deployment: str) -> None:
    with Client(deployment) as api:
        trip = api.start("book_trip", "oslo", "car")
        with pytest.raises(Rejected):
            api.wait(trip.id, timeout=60)
        steps = api.tree(trip.id).children
        # flight, hotel, car (failed), then the releases, newest booking first
        assert [s.status for s in steps] == [
            "resolved",
            "resolved",
            "rejected",
            "resolved",
            "resolved",
        ]
        assert trip.id in [d.id for d in api.list(function="book_trip", status="rejected")]
        slow = api.start("slow", 60, "never")
        assert api.cancel(slow.id).status == "canceled"
        listed = api.list(function="slow", status="canceled", limit=5)
        assert slow.id in [d.id for d, _ in zip(listed, range(50), strict=False)]


# ── a bounded number of backend calls per status read ─────────────────────


class Counting:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        original = _sdk._EmbeddedConnection.send

        async def send(conn: Any, req: str, headers: dict[str, str] | None = None) -> str:
            self.calls.append(req[:40])
            return await original(conn, req, headers)

        monkeypatch.setattr(_sdk._EmbeddedConnection, "send", send)


@pytest.mark.parametrize("steps", [10, 100])
def test_a_status_read_of_a_pending_invocation_costs_three_backend_calls(
    steps: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    counting = Counting(monkeypatch)
    app = FastAPI()
    app.include_router(ResonateRouter(build(), settings=Settings.load(environ={})))
    id = f"wide-{steps}"
    with TestClient(app) as client:
        client.post(f"/resonate/functions/wide?id={id}", json={"args": [steps]})
        for _ in range(600):
            doc = client.get(f"/resonate/invocations/{id}?wait=0.05").json()
            if doc.get("awaiting"):
                break
        counting.calls.clear()
        doc = client.get(f"/resonate/invocations/{id}").json()
        assert doc["awaiting"] == [f"{id}:{steps + 1}"]
        # the read, and two searches (what it awaits, its last failed attempt), however
        # many steps it took
        assert len(counting.calls) == 3, counting.calls
        assert len(client.get(f"/resonate/invocations/{id}/tree").json()["children"]) == steps + 1
