"""The Flask gateway under real gunicorn processes: forks, several workers, the CLI.

The real-server cases every adapter shares are in ``test_real_servers.py``."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conformance.helpers import P
from tests.support import procs
from tests.support.servers import new_id, start

APP = "tests.support.flask_app:app"


def test_forked_worker_of_a_preloading_master_serves() -> None:
    """``--preload``: the master imports the app (building the extension) and forks the
    one worker; the runtime starts in the worker on its first request."""
    with procs.gunicorn(APP, args=["--preload"]) as base:
        doc = start(base, "add", [20, 22], new_id("pre"), wait=10).json()
        assert doc["status"] == "resolved" and doc["result"] == 42
        assert httpx.get(f"{base}{P}/health").json() == {"status": "ok", "backend": "embedded"}
        doc = start(base, "app_config", ["RESONATE_X"], new_id("ctx"), wait=10).json()
        assert doc["result"] == "tests.support.flask_app:None"


@pytest.mark.parametrize("preload", [False, True])
def test_several_workers_on_the_embedded_backend_fail_loudly(preload: bool) -> None:
    args = ["--preload"] if preload else []
    with procs.gunicorn(APP, workers=2, args=args) as base:
        responses = [httpx.get(f"{base}{P}/health") for _ in range(4)]
        responses.append(start(base, "add", [1, 2], new_id("multi")))
        responses.append(httpx.get(f"{base}{P}/invocations/whatever"))
    for response in responses:
        assert response.status_code == 503
        body = response.json()
        assert body["type"] == "urn:resonate-web:problem:backend-unavailable"
        assert "several processes" in body["detail"]
        assert "RESONATE_URL" in body["detail"] and "resonate-web dev" in body["detail"]


def _flask(*args: str) -> list[str]:
    return [str(procs.BIN / "flask"), "--app", "tests.support.flask_app", *args]


def test_worker_command_refuses_the_embedded_backend() -> None:
    env = {k: v for k, v in procs.os.environ.items() if not k.startswith("RESONATE_")}
    env["PYTHONPATH"] = procs.PYTHONPATH
    done = subprocess.run(
        _flask("resonate", "worker"), env=env, cwd=procs.ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 1
    assert b"RESONATE_URL" in done.stderr


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[str]:
    if importlib.util.find_spec("resonate_web._devserver") is None:
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
        ids = [new_id("shared") for _ in range(6)]
        for n, id in enumerate(ids):
            assert start(base, "add", [n, n], id).status_code == 202
        # Any gateway worker reads any invocation: the state is in the shared backend.
        results = [
            httpx.get(f"{base}{P}/invocations/{id}", params={"wait": 20}, timeout=40).json()
            for id in ids
        ]
        assert [doc.get("result") for doc in results] == [0, 2, 4, 6, 8, 10]
        # The worker runs inline functions with the app's context.
        doc = start(base, "app_config", ["GREETING"], new_id("cfg"), wait=20).json()
        assert doc["result"] == "tests.support.flask_app:hello from the worker"
        assert procs.stop(worker) == 0
