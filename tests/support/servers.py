"""Every adapter's test app under a real server process, for tests that need one.

A server with default settings is started once per kind and shared; a test that
needs other settings starts its own with ``RESONATE_*`` variables.
"""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import httpx

from tests.conformance.helpers import P
from tests.support import django_clients, procs

Server = Callable[..., AbstractContextManager[str]]


def _fastapi_uvicorn(*, env: Mapping[str, str] | None = None) -> AbstractContextManager[str]:
    return procs.uvicorn("tests.support.fastapi_app:app", env=env)


def _flask_gunicorn(*, env: Mapping[str, str] | None = None) -> AbstractContextManager[str]:
    return procs.gunicorn("tests.support.flask_app:app", env=env)


SERVERS: dict[str, Server] = {
    "fastapi-uvicorn": _fastapi_uvicorn,
    "flask-gunicorn": _flask_gunicorn,
    "django-gunicorn": django_clients.gunicorn,
    "django-uvicorn": django_clients.uvicorn,
}

_SHARED = ExitStack()
atexit.register(_SHARED.close)
_RUNNING: dict[str, str] = {}


def shared(kind: str) -> str:
    """The base URL of ``kind`` with default settings (started on first use)."""
    if kind not in _RUNNING:
        _RUNNING[kind] = _SHARED.enter_context(SERVERS[kind]())
    return _RUNNING[kind]


def client_of(kind: str) -> Callable[..., AbstractContextManager[httpx.Client]]:
    """A conformance-harness entry: an HTTP client for ``kind``, shared unless configured."""

    @contextmanager
    def client(**settings: Any) -> Iterator[httpx.Client]:
        env = {f"RESONATE_{name.upper()}": str(value) for name, value in settings.items()}
        with ExitStack() as own:
            base = own.enter_context(SERVERS[kind](env=env)) if settings else shared(kind)
            with httpx.Client(base_url=base, timeout=60) as http:
                yield http

    return client


def new_id(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex}"


def start(base: str, name: str, args: list[object], id: str, wait: float = 0) -> httpx.Response:
    """``POST /functions/{name}`` on a running server."""
    return httpx.post(
        f"{base}{P}/functions/{name}",
        params={"id": id, "wait": str(wait)},
        json={"args": args},
        timeout=30,
    )


def awaited_promise(api: Any, id: str) -> str:
    """The promise invocation ``id`` awaits, through a ``resonate_web.client.Client``."""
    for _ in range(600):
        doc = api.status(id, wait=0.1)
        if doc.awaiting:
            return str(doc.awaiting[0])
    raise AssertionError(f"{id} never listed a promise to settle")
