"""The example functions (examples/gateway_worker/functions.py), tested the way a user
would test their own: with the framework's test client and ``resonate_clock``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask

from examples.gateway_worker.functions import functions
from resonate_web.fastapi import ResonateRouter
from resonate_web.flask import Resonate
from resonate_web.testing import StillPending, VirtualClock

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def client(resonate_clock: VirtualClock) -> Iterator[TestClient]:
    """The app, started on the clock (so this fixture asks for it)."""
    app = FastAPI()
    app.include_router(ResonateRouter(functions))
    with TestClient(app) as client:
        yield client


def start(client: TestClient, function: str, id: str, *args: object) -> None:
    response = client.post(f"/resonate/functions/{function}?id={id}", json={"args": list(args)})
    assert response.status_code in (200, 201, 202), response.text


def test_countdown_takes_its_durable_sleeps(
    client: TestClient, resonate_clock: VirtualClock, uid: str
) -> None:
    start(client, "countdown", uid, 3, 3600)
    resonate_clock.advance(timedelta(hours=2, minutes=59))
    assert client.get(f"/resonate/invocations/{uid}").json()["status"] == "pending"
    doc = resonate_clock.run_until_settled(uid)
    assert doc["result"] == 3
    assert resonate_clock.now == START + timedelta(hours=3)


def test_approval_waits_for_a_person(
    client: TestClient, resonate_clock: VirtualClock, uid: str
) -> None:
    start(client, "approval", uid, "a new laptop")
    with pytest.raises(StillPending, match=f"awaits {uid}:1"):
        resonate_clock.run_until_settled(uid)
    resolved = client.post(f"/resonate/promises/{uid}:1/resolve", json={"value": {"ok": True}})
    assert resolved.status_code == 200, resolved.text
    assert resonate_clock.run_until_settled(uid)["result"] == {"ok": True}
    assert resonate_clock.now == START


def test_approval_unanswered_times_out_with_the_invocation(
    client: TestClient, resonate_clock: VirtualClock, uid: str
) -> None:
    """No timeout given: the invocation (and its promise) time out after the SDK's day."""
    start(client, "approval", uid, "a new laptop")
    resonate_clock.advance(timedelta(days=1))
    doc = client.get(f"/resonate/invocations/{uid}").json()
    assert doc["status"] in ("rejected", "timedout"), doc


def test_digest_ticks_every_five_minutes(client: TestClient, resonate_clock: VirtualClock) -> None:
    resonate_clock.advance(timedelta(minutes=30))
    ticks = client.get("/resonate/schedules/digest").json()["recent"]
    assert [t["result"] for t in ticks] == [
        f"digest of 2030-01-01 00:{m:02d} UTC" for m in (30, 25, 20, 15, 10, 5)
    ]


def test_the_saga_compensates_in_reverse(
    client: TestClient, resonate_clock: VirtualClock, uid: str
) -> None:
    start(client, "book_trip", uid, "rome", "car")
    doc = resonate_clock.run_until_settled(uid)
    assert doc["status"] == "rejected" and "no car available" in doc["error"]["message"]
    tree = client.get(f"/resonate/invocations/{uid}/tree").json()
    # Flight and hotel booked, the car refused, then hotel and flight released.
    steps = [child["status"] for child in tree["children"]]
    assert steps == ["resolved", "resolved", "rejected", "resolved", "resolved"]


def test_fan_out_under_flask(resonate_clock: VirtualClock, uid: str) -> None:
    app = Flask(__name__)
    Resonate(functions=functions).init_app(app)
    client = app.test_client()
    assert client.post(f"/resonate/functions/fan_out?id={uid}", json={"args": [4]}).status_code
    assert resonate_clock.run_until_settled(uid)["result"] == 0 + 1 + 4 + 9
