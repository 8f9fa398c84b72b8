"""A custom authorize hook in each framework, backend credentials, and failure behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from flask import Flask

from resonate_web import Problem, Settings
from resonate_web._gateway.auth import Principal
from resonate_web._gateway.router import Gateway
from resonate_web.fastapi import ResonateRouter
from resonate_web.flask import Resonate
from tests.support import django_clients, procs
from tests.support.adapters import FlaskTestClient
from tests.support.functions import build

P = "/resonate"
JSON = {"content-type": "application/json"}


def header_hook(request: Any, action: str, resource: str | None) -> Principal:
    """Who the X-User header says, with ids under ``<user>-``; refuses ``mallory``."""
    user = request.headers.get("x-user")
    if not user:
        raise Problem(
            "unauthorized", "say who you are (X-User)", headers={"WWW-Authenticate": "Bearer"}
        )
    if user == "mallory" and action in {"start", "cancel"}:
        raise Problem("forbidden", f"mallory may not {action}")
    return Principal(subject=user, prefix=f"{user}-")


def _post(client: Any, url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(url, content=json.dumps(body).encode(), headers={**JSON, **(headers or {})})


def _isolated(client: Any) -> None:
    """The hook's principals each see only their own ids; its 401 and 403 are problems."""
    denied = _post(client, f"{P}/functions/add?id=x&wait=5", {"args": [1, 2]})
    assert denied.status_code == 401
    assert denied.headers["content-type"].startswith("application/problem+json")
    ada = _post(client, f"{P}/functions/add?id=x&wait=5", {"args": [1, 2]}, {"x-user": "ada"})
    assert ada.status_code == 200 and ada.json()["id"] == "x" and ada.json()["result"] == 3
    assert client.get(f"{P}/invocations/x", headers={"x-user": "bob"}).status_code == 404
    mallory = {"x-user": "mallory"}
    forbidden = _post(client, f"{P}/functions/add", {"args": [1, 2]}, mallory)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"{P}/health").status_code == 200


def test_fastapi_hook() -> None:
    app = FastAPI()
    app.include_router(ResonateRouter(build(), authorize=header_hook))
    with TestClient(app) as client:
        _isolated(client)


def test_fastapi_dependency_as_the_hook() -> None:
    def principal(x_user: str | None = Header(None)) -> Principal:
        if not x_user:
            raise HTTPException(401, "say who you are (X-User)")
        if x_user == "mallory":
            raise HTTPException(403, "not mallory")
        return Principal(subject=x_user, prefix=f"{x_user}-")

    app = FastAPI()
    app.include_router(ResonateRouter(build(), authorize=Depends(principal)))
    with TestClient(app) as client:
        _isolated(client)
        assert client.get(f"{P}/functions").headers["www-authenticate"] == "Bearer"


def test_fastapi_router_dependencies_answer_problems_too() -> None:
    def admin_only(x_role: str | None = Header(None)) -> None:
        if x_role != "admin":
            raise HTTPException(403, "admins only")

    app = FastAPI()
    app.include_router(ResonateRouter(build()), dependencies=[Depends(admin_only)])
    with TestClient(app) as client:
        refused = client.get(f"{P}/functions")
        assert refused.status_code == 403
        assert refused.json()["type"] == "urn:resonate-web:problem:forbidden"
        assert client.get(f"{P}/functions", headers={"x-role": "admin"}).status_code == 200


def test_flask_hook() -> None:
    resonate = Resonate(functions=build(), authorize=header_hook)
    app = Flask(__name__)
    resonate.init_app(app)
    try:
        _isolated(FlaskTestClient(app))
    finally:
        resonate.shutdown(app)


def test_django_hook() -> None:
    with django_clients.wsgi_client(
        authorize="tests.gateway.test_access_hooks.header_hook"
    ) as client:
        _isolated(client)


# ── backend credentials ──────────────────────────────────────────────────────


class _Refusing(BaseHTTPRequestHandler):
    """A server that refuses every request's credentials, as a Resonate server would."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        head = request.get("head") or {}
        body = {
            "kind": request.get("kind"),
            "head": {"corrId": head.get("corrId"), "status": 401, "version": head.get("version")},
            "data": "unauthorized",
        }
        self._send(401, json.dumps(body).encode())

    def do_GET(self) -> None:
        self._send(401, b"unauthorized")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_refused_backend_credentials_are_a_503_that_does_not_echo_the_token(
    refusing_server: str,
) -> None:
    secret = "the-backend-token-0123456789"
    settings = Settings.load(environ={}, url=refusing_server, token=secret, shutdown_timeout=1)
    app = FastAPI()
    app.include_router(ResonateRouter(build(), settings=settings))
    with TestClient(app) as client:
        for response in (
            client.get(f"{P}/invocations/x"),
            client.post(f"{P}/functions/add", json={"args": [1, 2]}),
        ):
            assert response.status_code == 503
            body = response.text
            assert "RESONATE_TOKEN" in response.json()["detail"]
            assert secret not in body
    assert secret not in repr(settings)


# ── a backend that goes away and comes back ──────────────────────────────────


@pytest.mark.multiprocess
def test_the_backend_down_mid_flight_then_back() -> None:
    """A real dev server stopped and restarted on the same port: prompt 503s while it is
    down, no stuck request, and the gateway serves again once it is back."""
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    argv = procs.python_module("resonate_web.cli", "dev", "--port", str(port))
    with procs.uvicorn("tests.support.fastapi_app:app", env={"RESONATE_URL": url}) as base:
        with procs.process(argv, ready_url=f"{url}/health"):
            assert httpx.get(f"{base}{P}/health", timeout=30).status_code == 200
            first = httpx.post(f"{base}{P}/functions/ping", json={}, timeout=30)
            assert first.status_code == 202
        down = httpx.get(f"{base}{P}/invocations/{first.json()['id']}", timeout=30)
        assert down.status_code == 503 and down.headers["retry-after"] == "1"
        refused = httpx.post(f"{base}{P}/functions/ping?id=while-down", json={}, timeout=30)
        assert refused.status_code == 503
        with procs.process(argv, ready_url=f"{url}/health"):
            for _ in range(600):  # the client reconnects on its own backoff
                again = httpx.get(f"{base}{P}/health", timeout=30)
                if again.status_code == 200:
                    break
                asyncio.run(asyncio.sleep(0.1))
            assert again.status_code == 200
            # The start that answered 503 was dropped, not sent once the server was
            # back: past the SDK's next resend (1 s, then 2 s), it does not exist.
            asyncio.run(asyncio.sleep(4))
            gone = httpx.get(f"{base}{P}/invocations/while-down", timeout=30)
            assert gone.status_code == 404, gone.text
            # The dev server forgot everything (it keeps state in memory): a new start works.
            assert httpx.post(f"{base}{P}/functions/ping", json={}, timeout=30).status_code == 202


# ── clients that leave ───────────────────────────────────────────────────────


def test_a_client_that_leaves_a_long_poll_or_stream_leaks_no_waiter() -> None:
    async def main() -> None:
        async with _in_process(keepalive=0.2) as (client, gateway):
            started = await client.post(f"{P}/functions/slow", json={"args": [60, "x"]})
            id = started.json()["id"]
            polls = [
                asyncio.create_task(client.get(f"{P}/invocations/{id}?wait=30")) for _ in range(5)
            ]
            while gateway.waiting < 5:  # noqa: ASYNC110 - polling the gateway's own count
                await asyncio.sleep(0.01)
            for poll in polls:
                poll.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
            async with client.stream("GET", f"{P}/invocations/{id}/events") as stream:
                async for _ in stream.aiter_lines():
                    break
            for _ in range(500):
                if gateway.waiting == 0:
                    break
                await asyncio.sleep(0.01)
            assert gateway.waiting == 0

    asyncio.run(main())


# ── configuration ────────────────────────────────────────────────────────────


def test_access_settings_are_checked_when_read() -> None:
    from resonate_web import ConfigurationError
    from resonate_web._gateway.auth import authorize_from_settings

    with pytest.raises(ConfigurationError, match="'none' is not an algorithm"):
        Settings.load(environ={"RESONATE_AUTH_JWT_ALGORITHMS": "HS256,none"})
    assert Settings.load(
        environ={"RESONATE_AUTH_JWT_ALGORITHMS": "HS256, RS256"}
    ).auth_jwt_algorithms == ("HS256", "RS256")
    both = Settings.load(environ={}, auth_token="t", auth_jwt_key="k", auth_jwt_algorithms="HS256")
    with pytest.raises(ConfigurationError, match="not both"):
        authorize_from_settings(both)
    with pytest.raises(ConfigurationError, match="RESONATE_AUTH_JWT_ALGORITHMS is required"):
        authorize_from_settings(Settings.load(environ={}, auth_jwt_key="k"))
    assert "t0ken" not in repr(Settings.load(environ={}, auth_token="t0ken", token="t0ken"))


def test_waiters_beyond_the_limit_are_a_503_not_a_queue() -> None:
    async def main() -> None:
        async with _in_process(max_waiters=2) as (client, gateway):
            started = await client.post(f"{P}/functions/slow", json={"args": [60, "x"]})
            id = started.json()["id"]
            held = [
                asyncio.create_task(client.get(f"{P}/invocations/{id}?wait=30")) for _ in range(2)
            ]
            while gateway.waiting < 2:  # noqa: ASYNC110 - polling the gateway's own count
                await asyncio.sleep(0.01)
            refused = await client.get(f"{P}/invocations/{id}?wait=30")
            assert refused.status_code == 503
            assert refused.json()["type"] == "urn:resonate-web:problem:too-many-waiters"
            assert refused.headers["retry-after"] == "1"
            # Without a wait the same read is served: only waiting is limited.
            assert (await client.get(f"{P}/invocations/{id}")).status_code == 200
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)
            assert gateway.waiting == 0

    asyncio.run(main())


@contextlib.asynccontextmanager
async def _in_process(**settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    """A FastAPI app with the router, run in process with its lifespan; its client
    and the router's gateway."""
    router = ResonateRouter(build(), settings=Settings.load(environ={}, **settings))
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with (
        router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        yield client, router.hosted.gateway
