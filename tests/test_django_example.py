"""The example Django project (``examples/gateway_worker/django_project``) under real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx
import pytest

from tests.support import procs

EXAMPLE = procs.ROOT / "examples" / "gateway_worker"
SETTINGS = {"DJANGO_SETTINGS_MODULE": "django_project.settings"}


@contextmanager
def uvicorn() -> Iterator[str]:
    with procs.uvicorn("django_project.asgi:application", env=SETTINGS, cwd=EXAMPLE) as base:
        yield base


@contextmanager
def gunicorn() -> Iterator[str]:
    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [
        str(procs.BIN / "gunicorn"),
        "django_project.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--threads",
        "8",
    ]
    with procs.process(argv, env=SETTINGS, cwd=EXAMPLE, ready_url=f"{base}/resonate/health"):
        yield base


@pytest.mark.parametrize("server", [uvicorn, gunicorn])
def test_the_example_serves_the_readme_flow(
    server: type[AbstractContextManager[str]],
) -> None:
    with server() as base:
        started = httpx.post(
            f"{base}/resonate/functions/add",
            content=b'{"args":[1,2]}',
            headers={"content-type": "application/json"},
        )
        assert started.status_code in (200, 202)
        doc = httpx.get(f"{base}/resonate/invocations/{started.json()['id']}?wait=5").json()
        assert doc["status"] == "resolved" and doc["result"] == 3
        assert httpx.get(f"{base}/hello/ada", timeout=15).json() == {"id": "hello-ada", "result": 4}


def test_the_example_passes_its_system_checks() -> None:
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
