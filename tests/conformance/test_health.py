"""GET /health and an unreachable backend."""

from __future__ import annotations

import time

import httpx

from tests.conformance.helpers import P, assert_problem, start, status
from tests.support.adapters import ADAPTERS, backend_of, unreachable_url
from tests.support.procs import free_port


def test_health(client: httpx.Client, adapter: str) -> None:
    response = client.get(f"{P}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "backend": backend_of(adapter)}


def test_unreachable_backend_is_503_never_a_hang(adapter: str) -> None:
    url = unreachable_url(adapter, free_port())
    with ADAPTERS[adapter](url=url, backend_timeout=0.5) as client:
        began = time.monotonic()
        for response in (
            client.get(f"{P}/health"),
            start(client, "add", {"args": [1, 2]}),
            status(client, "some-id"),
        ):
            body = assert_problem(response, 503, "backend-unavailable")
            assert response.headers["retry-after"] == "1"
            assert "did not answer" in body["detail"]
        assert time.monotonic() - began < 10
        # Bad input is still a 4xx: it never reaches the backend.
        assert_problem(start(client, "add", {"args": ["x", 1]}), 422, "invalid-arguments")
        assert_problem(start(client, "nope"), 404, "unknown-function")
