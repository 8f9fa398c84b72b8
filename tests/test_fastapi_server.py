"""The FastAPI gateway under a real uvicorn process: concurrency, long-poll, SSE."""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import httpx

from tests.conformance.helpers import P, sse_events
from tests.support import procs


def _start(base: str, name: str, args: list[object], id: str, wait: float = 0) -> httpx.Response:
    return httpx.post(
        f"{base}{P}/functions/{name}",
        params={"id": id, "wait": str(wait)},
        json={"args": args},
        timeout=30,
    )


def test_one_settle_releases_every_waiter(uvicorn_url: str) -> None:
    id = "w-" + uuid.uuid4().hex
    assert _start(uvicorn_url, "slow", [1.5, "together"], id).status_code == 202

    def wait() -> tuple[float, dict[str, object]]:
        response = httpx.get(f"{uvicorn_url}{P}/invocations/{id}", params={"wait": 25}, timeout=40)
        return time.monotonic(), response.json()

    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: wait(), range(8)))
    finished = [t for t, _ in results]
    assert all(doc["status"] == "resolved" and doc["result"] == "together" for _, doc in results)
    # Released by the settle (about 1.5 s in), not by the 25 s wait running out,
    # and all at once rather than one after another.
    assert max(finished) - began < 10
    assert max(finished) - min(finished) < 1.0


def test_waiters_on_different_invocations_do_not_block_each_other(uvicorn_url: str) -> None:
    quick, stuck = "q-" + uuid.uuid4().hex, "s-" + uuid.uuid4().hex
    _start(uvicorn_url, "slow", [60, "never mind"], stuck)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        blocked = pool.submit(
            httpx.get, f"{uvicorn_url}{P}/invocations/{stuck}", params={"wait": 4}, timeout=30
        )
        time.sleep(0.2)
        began = time.monotonic()
        doc = _start(uvicorn_url, "add", [20, 22], quick, wait=10).json()
        quick_elapsed = time.monotonic() - began
        assert blocked.result().json()["status"] == "pending"
    assert doc["result"] == 42
    assert quick_elapsed < 3


def test_sse_streams_pending_then_settled(uvicorn_url: str) -> None:
    id = "e-" + uuid.uuid4().hex
    _start(uvicorn_url, "slow", [1.0, "streamed"], id)
    with httpx.stream("GET", f"{uvicorn_url}{P}/invocations/{id}/events", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        first_chunk_at = None
        body = ""
        for chunk in response.iter_text():
            if first_chunk_at is None:
                first_chunk_at = time.monotonic()
            body += chunk
        closed_at = time.monotonic()
    events = sse_events(body)
    assert [doc["status"] for _, doc in events] == ["pending", "resolved"]
    assert events[-1][1]["result"] == "streamed"
    assert first_chunk_at is not None and closed_at - first_chunk_at > 0.3


def test_sse_keep_alive_comments_while_pending() -> None:
    with procs.uvicorn("tests.support.fastapi_app:app", env={"RESONATE_KEEPALIVE": "0.3"}) as base:
        id = "k-" + uuid.uuid4().hex
        _start(base, "slow", [1.2, "k"], id)
        with httpx.stream("GET", f"{base}{P}/invocations/{id}/events", timeout=30) as response:
            body = response.read().decode()
    assert body.count(": keep-alive") >= 2
    assert [doc["status"] for _, doc in sse_events(body)] == ["pending", "resolved"]


def test_timedout_long_poll_answers_promptly(uvicorn_url: str) -> None:
    id = "t-" + uuid.uuid4().hex
    began = time.monotonic()
    doc = _start(uvicorn_url, "slow_timeout", [60, "late"], id, wait=20).json()
    assert doc["status"] == "timedout"
    assert time.monotonic() - began < 6


def test_the_demo_serves_the_readme_example() -> None:
    """What `make demo` runs, driven with the README's curl lines."""
    with procs.uvicorn(
        "gateway_fastapi:app", cwd=procs.ROOT / "examples" / "gateway_worker"
    ) as base:
        started = httpx.post(
            f"{base}/resonate/functions/add",
            content=b'{"args":[1,2]}',
            headers={"content-type": "application/json"},
        )
        assert started.status_code in (200, 202)
        doc = httpx.get(f"{base}/resonate/invocations/{started.json()['id']}?wait=5").json()
        assert doc["status"] == "resolved"
        assert doc["result"] == 3
        assert httpx.get(f"{base}/hello/ada").json() == {"id": "hello-ada", "result": 4}
