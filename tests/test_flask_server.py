"""The Flask gateway under real gunicorn processes: threads, forks, workers, the CLI."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conformance.helpers import P, sse_events
from tests.support import procs

APP = "tests.support.flask_app:app"


@pytest.fixture(scope="module")
def gunicorn_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("gunicorn") / "server.log"
    with procs.gunicorn(APP, log=log) as url:
        yield url


def _start(base: str, name: str, args: list[object], id: str, wait: float = 0) -> httpx.Response:
    return httpx.post(
        f"{base}{P}/functions/{name}",
        params={"id": id, "wait": str(wait)},
        json={"args": args},
        timeout=30,
    )


def _id(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex}"


def test_two_long_polls_do_not_block_each_other(gunicorn_url: str) -> None:
    stuck, quick = _id("stuck"), _id("quick")
    assert _start(gunicorn_url, "slow", [60, "never mind"], stuck).status_code == 202
    assert _start(gunicorn_url, "slow", [0.5, "quick"], quick).status_code == 202
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = pool.submit(
            httpx.get, f"{gunicorn_url}{P}/invocations/{stuck}", params={"wait": 5}, timeout=30
        )
        time.sleep(0.2)
        began = time.monotonic()
        doc = httpx.get(
            f"{gunicorn_url}{P}/invocations/{quick}", params={"wait": 20}, timeout=30
        ).json()
        elapsed = time.monotonic() - began
        # The quick poll came back while the other one was still held.
        still_held = not held.done()
        assert held.result().json()["status"] == "pending"
    assert doc["status"] == "resolved" and doc["result"] == "quick"
    assert still_held
    assert elapsed < 4


def test_one_settle_releases_every_waiter(gunicorn_url: str) -> None:
    id = _id("w")
    assert _start(gunicorn_url, "slow", [1.0, "together"], id).status_code == 202

    def wait() -> dict[str, object]:
        url = f"{gunicorn_url}{P}/invocations/{id}"
        return dict(httpx.get(url, params={"wait": 25}, timeout=40).json())

    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        docs = list(pool.map(lambda _: wait(), range(6)))
    assert all(d["status"] == "resolved" and d["result"] == "together" for d in docs)
    assert time.monotonic() - began < 15  # released by the settle, not by the 25 s wait


def test_sse_streams_pending_then_settled(gunicorn_url: str) -> None:
    id = _id("e")
    _start(gunicorn_url, "slow", [1.0, "streamed"], id)
    url = f"{gunicorn_url}{P}/invocations/{id}/events"
    with httpx.stream("GET", url, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = [(time.monotonic(), chunk) for chunk in response.iter_text()]
    events = sse_events("".join(c for _, c in chunks))
    assert [doc["status"] for _, doc in events] == ["pending", "resolved"]
    assert events[-1][1]["result"] == "streamed"
    # The pending frame was sent at once, not buffered until the end.
    assert chunks[-1][0] - chunks[0][0] > 0.3


def test_sse_keep_alive_comments_while_pending() -> None:
    with procs.gunicorn(APP, env={"RESONATE_KEEPALIVE": "0.3"}) as base:
        id = _id("k")
        _start(base, "slow", [1.2, "k"], id)
        with httpx.stream("GET", f"{base}{P}/invocations/{id}/events", timeout=30) as response:
            body = response.read().decode()
    assert body.count(": keep-alive") >= 2
    assert [doc["status"] for _, doc in sse_events(body)] == ["pending", "resolved"]


def test_forked_worker_of_a_preloading_master_serves() -> None:
    """``--preload``: the master imports the app (building the extension) and forks the
    one worker; the runtime starts in the worker on its first request."""
    with procs.gunicorn(APP, args=["--preload"]) as base:
        doc = _start(base, "add", [20, 22], _id("pre"), wait=10).json()
        assert doc["status"] == "resolved" and doc["result"] == 42
        assert httpx.get(f"{base}{P}/health").json() == {"status": "ok", "backend": "embedded"}
        doc = _start(base, "app_config", ["RESONATE_X"], _id("ctx"), wait=10).json()
        assert doc["result"] == "tests.support.flask_app:None"


@pytest.mark.parametrize("preload", [False, True])
def test_several_workers_on_the_embedded_backend_fail_loudly(preload: bool) -> None:
    args = ["--preload"] if preload else []
    with procs.gunicorn(APP, workers=2, args=args) as base:
        responses = [httpx.get(f"{base}{P}/health") for _ in range(4)]
        responses.append(_start(base, "add", [1, 2], _id("multi")))
        responses.append(httpx.get(f"{base}{P}/invocations/whatever"))
    for response in responses:
        assert response.status_code == 503
        body = response.json()
        assert body["type"] == "urn:resonate-web:problem:backend-unavailable"
        assert "several processes" in body["detail"]
        assert "RESONATE_URL" in body["detail"] and "resonate-web dev" in body["detail"]


def test_the_example_serves_the_readme_requests() -> None:
    cwd = procs.ROOT / "examples" / "gateway_worker"
    with procs.gunicorn("gateway_flask:app", cwd=cwd) as base:
        started = httpx.post(
            f"{base}/resonate/functions/add",
            content=b'{"args":[1,2]}',
            headers={"content-type": "application/json"},
        )
        assert started.status_code in (200, 202)
        doc = httpx.get(f"{base}/resonate/invocations/{started.json()['id']}?wait=5").json()
        assert doc["status"] == "resolved" and doc["result"] == 3
        assert httpx.get(f"{base}/hello/ada").json() == {"id": "hello-ada", "result": 4}


def _flask(*args: str) -> list[str]:
    return [str(procs.BIN / "flask"), "--app", "tests.support.flask_app", *args]


def test_worker_command_refuses_the_embedded_backend() -> None:
    env = {k: v for k, v in procs.os.environ.items() if not k.startswith("RESONATE_")}
    env["PYTHONPATH"] = str(procs.ROOT)
    done = subprocess.run(
        _flask("resonate", "worker"), env=env, cwd=procs.ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 1
    assert b"RESONATE_URL" in done.stderr


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[str]:
    if importlib.util.find_spec("resonate_web.devserver") is None:
        pytest.skip("the development server is not part of this checkout")
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [procs.sys.executable, "-m", "resonate_web.cli", "dev", "--port", str(port)]
    with procs.process(argv, ready_url=f"{url}/health", log=tmp_path / "dev.log"):
        yield url


def test_several_workers_and_a_flask_worker_on_a_shared_backend(
    dev_server: str, tmp_path: Path
) -> None:
    env = {"RESONATE_URL": dev_server, "FLASK_GREETING": "hello from the worker"}
    worker_argv = _flask("resonate", "worker")
    with (
        procs.gunicorn(APP, workers=3, env=env, log=tmp_path / "gunicorn.log") as base,
        procs.process(worker_argv, env=env, log=tmp_path / "worker.log") as worker,
    ):
        ids = [_id("shared") for _ in range(6)]
        for n, id in enumerate(ids):
            assert _start(base, "add", [n, n], id).status_code == 202
        # Any gateway worker reads any invocation: the state is in the shared backend.
        results = [
            httpx.get(f"{base}{P}/invocations/{id}", params={"wait": 20}, timeout=40).json()
            for id in ids
        ]
        assert [doc.get("result") for doc in results] == [0, 2, 4, 6, 8, 10]
        # The worker runs inline functions with the app's context.
        doc = _start(base, "app_config", ["GREETING"], _id("cfg"), wait=20).json()
        assert doc["result"] == "tests.support.flask_app:hello from the worker"
        assert procs.stop(worker) == 0
