"""The example gateways (``examples/gateway_worker``) under real servers, driven with
the README's requests: what `make demo` serves, and its Flask and Django twins."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from tests.support import procs

EXAMPLE = procs.ROOT / "examples" / "gateway_worker"
DJANGO = {"DJANGO_SETTINGS_MODULE": "django_project.settings"}

EXAMPLES: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "fastapi-uvicorn": lambda: procs.uvicorn("gateway_fastapi:app", cwd=EXAMPLE),
    "flask-gunicorn": lambda: procs.gunicorn("gateway_flask:app", cwd=EXAMPLE),
    "django-uvicorn": lambda: procs.uvicorn(
        "django_project.asgi:application", env=DJANGO, cwd=EXAMPLE
    ),
    "django-gunicorn": lambda: procs.gunicorn("django_project.wsgi", env=DJANGO, cwd=EXAMPLE),
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
