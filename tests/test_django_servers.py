"""Django under real servers: gunicorn with threads (WSGI) and uvicorn (ASGI).

The conformance suite runs against both through the ``django-gunicorn`` and
``django-uvicorn`` adapters. Here: what only a real server shows (concurrent
long-polls, event streams as they happen), with the FastAPI server cases reused
as written, against each Django server.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conformance.helpers import P, sse_events
from tests.support import django_clients

# Written once for the FastAPI server; the ``uvicorn_url`` fixture below points
# them at the Django servers instead.
from tests.test_fastapi_server import (  # noqa: F401
    _start,
    test_one_settle_releases_every_waiter,
    test_sse_streams_pending_then_settled,
    test_timedout_long_poll_answers_promptly,
    test_waiters_on_different_invocations_do_not_block_each_other,
)


@pytest.fixture(params=["gunicorn", "uvicorn"])
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def uvicorn_url(server: str) -> str:
    return django_clients.shared_server(server)


def test_sse_keep_alive_comments_while_pending(server: str) -> None:
    with django_clients.SERVERS[server](env={"RESONATE_KEEPALIVE": "0.3"}) as base:
        id = "k-" + uuid.uuid4().hex
        _start(base, "slow", [1.2, "k"], id)
        with httpx.stream("GET", f"{base}{P}/invocations/{id}/events", timeout=30) as response:
            body = response.read().decode()
    assert body.count(": keep-alive") >= 2
    assert [doc["status"] for _, doc in sse_events(body)] == ["pending", "resolved"]


def test_clients_that_leave_event_streams_free_the_server(server: str) -> None:
    """Under WSGI a stream holds a thread until its next write finds the client
    gone (at the next keep-alive comment); under ASGI the server says so at once."""
    with django_clients.SERVERS[server](env={"RESONATE_KEEPALIVE": "0.5"}) as base:
        id = "l-" + uuid.uuid4().hex
        _start(base, "slow", [30, "never read"], id)
        for _ in range(40):  # more streams than gunicorn has threads
            with httpx.stream("GET", f"{base}{P}/invocations/{id}/events", timeout=10) as response:
                assert next(response.iter_text()).startswith("event: status")
        assert httpx.get(f"{base}{P}/health", timeout=10).status_code == 200
