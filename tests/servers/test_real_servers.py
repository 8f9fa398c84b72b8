"""What only a real server shows, written once and run against every adapter's server:
FastAPI under uvicorn, Flask under gunicorn (threads), Django under gunicorn
(WSGI, threads) and under uvicorn (ASGI)."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import pytest

from tests.conformance.helpers import P, sse_events
from tests.support import servers
from tests.support.servers import new_id, start


@pytest.fixture(params=sorted(servers.SERVERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def base(kind: str) -> str:
    return servers.shared(kind)


def test_one_settle_releases_every_waiter(base: str) -> None:
    id = new_id("w")
    assert start(base, "slow", [1.5, "together"], id).status_code == 202

    def wait() -> tuple[float, dict[str, object]]:
        response = httpx.get(f"{base}{P}/invocations/{id}", params={"wait": 25}, timeout=40)
        return time.monotonic(), response.json()

    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: wait(), range(6)))
    finished = [t for t, _ in results]
    assert all(doc["status"] == "resolved" and doc["result"] == "together" for _, doc in results)
    # Released by the settle (about 1.5 s in), not by the 25 s wait running out.
    assert max(finished) - began < 12


def test_two_long_polls_do_not_block_each_other(base: str) -> None:
    stuck, quick = new_id("stuck"), new_id("quick")
    assert start(base, "slow", [60, "never mind"], stuck).status_code == 202
    assert start(base, "slow", [0.5, "quick"], quick).status_code == 202
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = pool.submit(
            httpx.get, f"{base}{P}/invocations/{stuck}", params={"wait": 5}, timeout=30
        )
        time.sleep(0.2)
        doc = httpx.get(f"{base}{P}/invocations/{quick}", params={"wait": 20}, timeout=30).json()
        still_held = not held.done()  # the quick poll came back while the other was held
        assert held.result().json()["status"] == "pending"
    assert doc["status"] == "resolved" and doc["result"] == "quick"
    assert still_held


def test_a_start_is_not_held_up_by_a_long_poll(base: str) -> None:
    stuck = new_id("s")
    start(base, "slow", [60, "never mind"], stuck)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(
            httpx.get, f"{base}{P}/invocations/{stuck}", params={"wait": 4}, timeout=30
        )
        time.sleep(0.2)
        doc = start(base, "add", [20, 22], new_id("q"), wait=10).json()
        still_blocked = not blocked.done()  # the start finished while the poll was held
        assert blocked.result().json()["status"] == "pending"
    assert doc["result"] == 42
    assert still_blocked


def test_sse_streams_pending_then_settled(base: str) -> None:
    id = new_id("e")
    start(base, "slow", [1.0, "streamed"], id)
    with httpx.stream("GET", f"{base}{P}/invocations/{id}/events", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = [(time.monotonic(), chunk) for chunk in response.iter_text()]
    events = sse_events("".join(c for _, c in chunks))
    assert [doc["status"] for _, doc in events] == ["pending", "resolved"]
    assert events[-1][1]["result"] == "streamed"
    # The pending frame was sent at once, not buffered until the end.
    assert chunks[-1][0] - chunks[0][0] > 0.3


def test_sse_keep_alive_comments_while_pending(kind: str) -> None:
    with servers.SERVERS[kind](env={"RESONATE_KEEPALIVE": "0.3"}) as own:
        id = new_id("k")
        start(own, "slow", [1.2, "k"], id)
        with httpx.stream("GET", f"{own}{P}/invocations/{id}/events", timeout=30) as response:
            body = response.read().decode()
    assert body.count(": keep-alive") >= 2
    assert [doc["status"] for _, doc in sse_events(body)] == ["pending", "resolved"]


def test_clients_that_leave_event_streams_free_the_server(kind: str) -> None:
    """Under WSGI a stream holds a thread until its next write finds the client
    gone (at the next keep-alive comment); under ASGI the server says so at once."""
    with servers.SERVERS[kind](env={"RESONATE_KEEPALIVE": "0.5"}) as own:
        id = new_id("l")
        start(own, "slow", [30, "never read"], id)
        for _ in range(40):  # more streams than a threaded server has threads
            with httpx.stream("GET", f"{own}{P}/invocations/{id}/events", timeout=10) as response:
                assert next(response.iter_text()).startswith("event: status")
        assert httpx.get(f"{own}{P}/health", timeout=10).status_code == 200


def test_a_sync_function_never_blocks_the_server(base: str, tmp_path: Path) -> None:
    """While a ``def`` function blocks, the server answers other requests: it runs in
    a thread, not on the loop that serves (or on the portal's loop)."""
    started, release = tmp_path / "started", tmp_path / "release"
    id = new_id("hold")
    assert start(base, "hold", [str(started), str(release)], id).status_code == 202
    while not started.exists():  # the function is running and blocks from now on
        time.sleep(0.02)
    assert httpx.get(f"{base}{P}/health", timeout=30).status_code == 200
    assert httpx.get(f"{base}{P}/invocations/{id}", timeout=30).json()["status"] == "pending"
    release.touch()
    doc = httpx.get(f"{base}{P}/invocations/{id}", params={"wait": 20}, timeout=30).json()
    assert doc["status"] == "resolved" and doc["result"] == "released"


def test_timedout_long_poll_answers_promptly(base: str) -> None:
    id = new_id("t")
    began = time.monotonic()
    doc = start(base, "slow_timeout", [60, "late"], id, wait=20).json()
    assert doc["status"] == "timedout"
    assert time.monotonic() - began < 6
