"""One entry per adapter: a context manager yielding an HTTP client for a live app.

The conformance suite is written once against these clients (an
``httpx.Client`` or anything with the same ``request``/``get``/``post`` shape).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx

from tests.support import django_clients, servers


@contextmanager
def fastapi_client(**settings: Any) -> Iterator[httpx.Client]:
    from fastapi.testclient import TestClient

    from tests.support.fastapi_app import create_app

    with TestClient(create_app(**settings)) as client:
        yield client


@contextmanager
def fastapi_pg_client(**settings: Any) -> Iterator[httpx.Client]:
    """The FastAPI app on Postgres (``url`` a DSN), running its functions in process.

    With ``RESONATE_URL`` set, ``mode="auto"`` would dispatch every function to
    workers; exposed ``inline``, the web process runs them itself, durable on the
    database, so the conformance cases need no worker.
    """
    from fastapi.testclient import TestClient

    from tests.support.fastapi_app import create_app
    from tests.support.functions import build

    with TestClient(create_app(build(mode="inline"), **settings)) as client:
        yield client


class _FlaskResponse:
    """A Flask test response with the httpx response attributes the suite reads."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.status_code: int = response.status_code
        self.headers = response.headers

    def read(self) -> bytes:
        data: bytes = self._response.get_data()
        return data

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        return self.read().decode()

    def json(self) -> Any:
        return json.loads(self.read())


class FlaskTestClient:
    """Flask's own test client, called the way the suite calls an ``httpx.Client``."""

    def __init__(self, app: Any) -> None:
        self._client = app.test_client()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        buffered: bool = True,
    ) -> _FlaskResponse:
        response = self._client.open(
            url,
            method=method,
            query_string=params,
            data=content,
            headers=headers,
            buffered=buffered,
        )
        return _FlaskResponse(response)

    def get(self, url: str, **kwargs: Any) -> _FlaskResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> _FlaskResponse:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> _FlaskResponse:
        return self.request("DELETE", url, **kwargs)

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[_FlaskResponse]:
        response = self.request(method, url, buffered=False, **kwargs)
        try:
            yield response
        finally:
            response._response.close()


@contextmanager
def flask_client(**settings: Any) -> Iterator[FlaskTestClient]:
    from tests.support.flask_app import create_app, resonate

    app = create_app(**settings)
    try:
        yield FlaskTestClient(app)
    finally:
        resonate.shutdown(app)


Adapter = Callable[..., AbstractContextManager[Any]]

ADAPTERS: dict[str, Adapter] = {
    "fastapi": fastapi_client,
    "flask": flask_client,
    "fastapi-uvicorn": servers.client_of("fastapi-uvicorn"),
    "flask-gunicorn": servers.client_of("flask-gunicorn"),
    "django": django_clients.wsgi_client,
    "django-gunicorn": servers.client_of("django-gunicorn"),
    "django-uvicorn": servers.client_of("django-uvicorn"),
    "fastapi-pg": fastapi_pg_client,
}

#: Adapters whose app runs on Postgres: the ``client`` fixture hands them the
#: test module's database as ``url``.
PG_ADAPTERS = frozenset({"fastapi-pg"})


def backend_of(adapter: str) -> str:
    """The backend ``GET /health`` names for ``adapter``'s app."""
    return "postgres" if adapter in PG_ADAPTERS else "embedded"


def unreachable_url(adapter: str, port: int) -> str:
    """A backend URL of ``adapter``'s kind where nothing listens (``port`` is free)."""
    if adapter in PG_ADAPTERS:
        return f"postgresql://resonate:secret@127.0.0.1:{port}/resonate"
    return f"http://127.0.0.1:{port}"
