"""The example gateways (``examples/gateway_worker``) under real servers, driven with
the README's requests: what `make demo` serves, and its Flask and Django twins."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from tests.support import procs

EXAMPLE = procs.ROOT / "examples" / "gateway_worker"
DJANGO = {"DJANGO_SETTINGS_MODULE": "django_project.settings"}

Env = dict[str, str]
EXAMPLES: dict[str, Callable[..., AbstractContextManager[str]]] = {
    "fastapi-uvicorn": lambda env=None: procs.uvicorn("gateway_fastapi:app", env=env, cwd=EXAMPLE),
    "flask-gunicorn": lambda env=None: procs.gunicorn("gateway_flask:app", env=env, cwd=EXAMPLE),
    "django-uvicorn": lambda env=None: procs.uvicorn(
        "django_project.asgi:application", env={**DJANGO, **(env or {})}, cwd=EXAMPLE
    ),
    "django-gunicorn": lambda env=None: procs.gunicorn(
        "django_project.wsgi", env={**DJANGO, **(env or {})}, cwd=EXAMPLE
    ),
}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_example_serves_the_readme_requests(example: str) -> None:
    with EXAMPLES[example]() as base:
        started = httpx.post(
            f"{base}/resonate/functions/add",
            content=b'{"args":[1,2]}',
            headers={"content-type": "application/json"},
        )
        assert started.status_code in (200, 202)
        doc = httpx.get(f"{base}/resonate/invocations/{started.json()['id']}?wait=5").json()
        assert doc["status"] == "resolved"
        assert doc["result"] == 3
        assert httpx.get(f"{base}/hello/ada", timeout=15).json() == {"id": "hello-ada", "result": 4}
        # The client's Problem in the example's own handler is problem+json, not a 500.
        bad = httpx.get(f"{base}/hello/a:b", timeout=15)
        assert bad.status_code == 400, bad.text
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert bad.json()["type"] == "urn:resonate-web:problem:invalid-id"


def test_the_django_example_passes_its_system_checks() -> None:
    out = subprocess.run(
        [sys.executable, "django_project/manage.py", "check", "--fail-level", "WARNING"],
        cwd=EXAMPLE,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "no issues" in out.stdout


@pytest.mark.parametrize("example", ["django-gunicorn", "fastapi-uvicorn", "flask-gunicorn"])
def test_a_handler_s_client_dispatches_to_a_worker_when_a_backend_is_set(example: str) -> None:
    """With RESONATE_URL set, ``/hello/ada`` (the example's own handler, using the injected
    client) starts ``add`` on the workers' group, as the route would: with no worker it
    waits, pending; a worker that joins runs it."""
    with (
        procs.dev_server() as url,
        EXAMPLES[example]({"RESONATE_URL": url}) as base,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        hello = pool.submit(httpx.get, f"{base}/hello/ada", timeout=60)
        status = f"{base}/resonate/invocations/hello-ada"
        while httpx.get(status, timeout=30).status_code == 404:
            time.sleep(0.05)
        assert httpx.get(status, timeout=30).json()["status"] == "pending"
        assert not hello.done()  # nobody of the workers' group is there yet
        worker = procs.start_worker("examples.gateway_worker.functions", url)
        try:
            assert hello.result().json() == {"id": "hello-ada", "result": 4}
        finally:
            procs.stop(worker)
