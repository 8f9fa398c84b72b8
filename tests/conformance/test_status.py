"""GET /invocations/{id}: documents, long-polls, outcomes."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conformance.helpers import P, assert_problem, start, status


def test_unknown_id_is_404(client: httpx.Client, uid: str) -> None:
    assert_problem(status(client, uid), 404, "not-found")


@pytest.mark.parametrize("bad", ["a..b", "-a", "a:1"])
def test_invalid_id_is_400(client: httpx.Client, bad: str) -> None:
    assert_problem(status(client, bad), 400, "invalid-id")


def test_pending_carries_retry_after(client: httpx.Client, uid: str) -> None:
    start(client, "slow", {"args": [0.5, "x"]}, id=uid)
    response = status(client, uid)
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert "retry-after" in response.headers


def test_long_poll_returns_when_settled_not_at_the_end_of_wait(
    client: httpx.Client, uid: str
) -> None:
    start(client, "slow", {"args": [0.3, "done"]}, id=uid)
    began = time.monotonic()
    response = status(client, uid, wait=20)
    assert response.json()["status"] == "resolved"
    assert time.monotonic() - began < 10


def test_long_poll_gives_up_after_wait(client: httpx.Client, uid: str) -> None:
    start(client, "slow", {"args": [30, "x"]}, id=uid)
    began = time.monotonic()
    response = status(client, uid, wait=0.5)
    assert response.json()["status"] == "pending"
    assert 0.4 <= time.monotonic() - began < 10


def test_rejected_is_200_with_the_error_and_no_traceback(client: httpx.Client) -> None:
    response = start(client, "fail", {"args": ["boom"]}, wait=10)
    assert response.status_code == 200
    doc = response.json()
    assert doc["status"] == "rejected"
    assert doc["error"] == {"type": "ValueError", "message": "boom"}
    assert "result" not in doc
    assert "Traceback" not in response.text and "__py_pickle" not in response.text
    assert status(client, doc["id"]).json() == doc


def test_timedout_is_reported_promptly(client: httpx.Client, uid: str) -> None:
    began = time.monotonic()
    response = start(client, "slow_timeout", {"args": [30, "late"]}, id=uid, wait=15)
    doc = response.json()
    assert doc["status"] == "timedout", doc
    assert time.monotonic() - began < 6
    assert "error" not in doc and "result" not in doc


def test_awaiting_lists_the_promise_to_settle(client: httpx.Client, uid: str) -> None:
    response = start(client, "approval", {"args": ["ship it?"]}, id=uid, wait=0.5)
    doc = response.json()
    assert doc["status"] == "pending"
    assert doc["awaiting"] == [f"{uid}:1"]


def test_durable_sleeps_complete(client: httpx.Client) -> None:
    doc = start(client, "countdown", {"args": [2, 0.1]}, wait=15).json()
    assert doc["status"] == "resolved" and doc["result"] == 2


def test_dispatched_invocation_stays_pending_until_a_worker_runs_it(
    client: httpx.Client, uid: str
) -> None:
    start(client, "remote_add", {"args": [1, 2]}, id=uid)
    doc = status(client, uid).json()
    assert doc["status"] == "pending" and doc["function"] == "remote_add"


def test_links_follow_the_mount(client: httpx.Client, uid: str) -> None:
    doc = start(client, "ping", id=uid, wait=5).json()
    assert client.get(doc["links"]["self"]).json() == doc
    assert doc["links"]["self"] == f"{P}/invocations/{uid}"


def test_a_capped_wait_says_so_in_a_header(client: httpx.Client, uid: str) -> None:
    started = start(client, "add", {"args": [1, 2]}, id=uid, wait=100)
    assert started.json()["status"] == "resolved"
    assert started.headers["resonate-wait-capped"] == "30"  # the default RESONATE_WAIT_CAP
    assert status(client, uid, wait=100).headers["resonate-wait-capped"] == "30"
    for within in (None, 5, 30):
        assert "resonate-wait-capped" not in status(client, uid, wait=within).headers
