"""The OpenAPI document: valid, one operation per function, and only what is sent.

FastAPI merges the core's operations into ``/openapi.json``; Flask and Django
serve the same document at ``{prefix}/openapi.json``. Every response a
document lists is produced here by a real request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel
from resonate.context import Context

from resonate_web import Functions, Settings
from resonate_web._core.runtime import Runtime
from resonate_web._gateway.openapi import document
from tests.support.adapters import ADAPTERS
from tests.support.procs import free_port

P = "/resonate"


def _spec(adapter: str) -> dict[str, Any]:
    path = "/openapi.json" if adapter == "fastapi" else f"{P}/openapi.json"
    with ADAPTERS[adapter]() as client:
        response = client.get(path)
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


@pytest.mark.parametrize("adapter", ["django", "fastapi", "flask"])
def test_the_document_is_valid_openapi_with_an_operation_per_function(adapter: str) -> None:
    spec = _spec(adapter)
    validate(spec)
    add = spec["paths"][f"{P}/functions/add"]["post"]
    body = add["requestBody"]["content"]["application/json"]["schema"]
    by_name = body["anyOf"][1]["properties"]["kwargs"]
    assert by_name["properties"]["a"] == {"title": "A", "type": "integer"}
    assert by_name["properties"]["b"]["type"] == "integer"
    assert add["description"].startswith("Add two integers.")
    assert f"{P}/functions/{{name}}" not in spec["paths"]


def test_flask_and_django_serve_the_same_document() -> None:
    assert _spec("flask")["paths"].keys() - {f"{P}/functions/app_config"} == (
        _spec("django")["paths"].keys() - {f"{P}/functions/orders_seen", f"{P}/functions/note"}
    )


class Item(BaseModel):
    sku: str
    qty: int


def order(ctx: Context, items: list[Item]) -> int:
    return len(items)


def test_nested_models_become_components() -> None:
    functions = Functions()
    functions.expose(order)
    spec = document(Runtime(Settings.load(environ={}), functions).exposed, "/r")
    validate(spec)
    assert "order.Item" in spec["components"]["schemas"]
    assert "#/components/schemas/order.Item" in json.dumps(spec["paths"]["/r/functions/order"])


# ── every documented response is one the route sends ────────────────────────

Send = Callable[[httpx.Client, httpx.Client], httpx.Response]
JSON = {"content-type": "application/json"}


def _start(client: httpx.Client, **kwargs: Any) -> httpx.Response:
    return client.post(f"{P}/functions/add", **kwargs)


def _awaited(up: httpx.Client) -> str:
    """A promise an ``approval`` invocation awaits (pending)."""
    doc = up.post(f"{P}/functions/approval", content=b'{"args":["?"]}', headers=JSON).json()
    for _ in range(300):
        if doc.get("awaiting"):
            return str(doc["awaiting"][0])
        doc = up.get(f"{P}/invocations/{doc['id']}", params={"wait": "0.1"}).json()
    raise AssertionError(doc)


def _settled(up: httpx.Client, action: str) -> str:
    """A promise an invocation awaited, already settled by ``action``."""
    promise = _awaited(up)
    body = {"resolve": b'{"value":1}', "reject": b'{"error":1}'}.get(action, b"")
    up.post(f"{P}/promises/{promise}/{action}", content=body, headers=JSON if body else {})
    return promise


def _pending(up: httpx.Client) -> str:
    doc = up.post(f"{P}/functions/slow", content=b'{"args":[30,"x"]}', headers=JSON).json()
    return str(doc["id"])


def _resolved(up: httpx.Client) -> str:
    return str(
        _start(up, params={"wait": "5"}, content=b'{"args":[1,2]}', headers=JSON).json()["id"]
    )


def _rejected(up: httpx.Client) -> str:
    doc = up.post(
        f"{P}/functions/fail", params={"wait": "5"}, content=b'{"args":["no"]}', headers=JSON
    ).json()
    return str(doc["id"])


def _settle_recipes(action: str, body: bytes) -> dict[tuple[str, str], Send]:
    route = f"/promises/{{id}}/{action}"

    def post(
        client: httpx.Client, id: str, content: bytes = body, headers: dict[str, str] = JSON
    ) -> httpx.Response:
        return client.post(f"{P}/promises/{id}/{action}", content=content, headers=headers)

    other = "reject" if action == "resolve" else "resolve"
    return {
        (route, "200"): lambda up, down: post(up, _awaited(up)),
        (route, "400"): lambda up, down: post(up, "a..b"),
        (route, "404"): lambda up, down: post(up, "nobody:1"),
        (route, "409"): lambda up, down: post(up, _settled(up, other)),
        (route, "413"): lambda up, down: post(up, _awaited(up), b'{"x":"' + b"x" * (1 << 21)),
        (route, "415"): lambda up, down: post(
            up, _awaited(up), b"1", headers={"content-type": "text/plain"}
        ),
        (route, "503"): lambda up, down: post(down, "nobody:1"),
    }


RECIPES: dict[tuple[str, str], Send] = {
    ("/functions", "200"): lambda up, down: up.get(f"{P}/functions"),
    ("/functions/add", "200"): lambda up, down: _start(
        up, params={"wait": "5"}, content=b'{"args":[1,2]}', headers=JSON
    ),
    ("/functions/add", "202"): lambda up, down: up.post(
        f"{P}/functions/slow", content=b'{"args":[30,"x"]}', headers=JSON
    ),
    ("/functions/add", "400"): lambda up, down: _start(up, content=b"{", headers=JSON),
    ("/functions/add", "413"): lambda up, down: _start(
        up, content=b'{"args":["' + b"x" * (1 << 21) + b'"]}', headers=JSON
    ),
    ("/functions/add", "415"): lambda up, down: _start(
        up, content=b"1,2", headers={"content-type": "text/plain"}
    ),
    ("/functions/add", "422"): lambda up, down: _start(
        up, content=b'{"args":[1,"x"]}', headers=JSON
    ),
    ("/functions/add", "503"): lambda up, down: _start(
        down, content=b'{"args":[1,2]}', headers=JSON
    ),
    ("/invocations/{id}", "200"): lambda up, down: up.get(
        f"{P}/invocations/" + _start(up, content=b'{"args":[1,2]}', headers=JSON).json()["id"]
    ),
    ("/invocations/{id}", "400"): lambda up, down: up.get(f"{P}/invocations/a..b"),
    ("/invocations/{id}", "404"): lambda up, down: up.get(f"{P}/invocations/nobody"),
    ("/invocations/{id}", "503"): lambda up, down: down.get(f"{P}/invocations/nobody"),
    ("/invocations/{id}/events", "200"): lambda up, down: up.get(
        f"{P}/invocations/"
        + _start(up, params={"wait": "5"}, content=b'{"args":[1,2]}', headers=JSON).json()["id"]
        + "/events"
    ),
    ("/invocations/{id}/events", "400"): lambda up, down: up.get(f"{P}/invocations/a..b/events"),
    ("/invocations/{id}/events", "404"): lambda up, down: up.get(f"{P}/invocations/x/events"),
    ("/invocations/{id}/events", "503"): lambda up, down: down.get(f"{P}/invocations/x/events"),
    ("/invocations", "200"): lambda up, down: up.get(f"{P}/invocations"),
    ("/invocations", "400"): lambda up, down: up.get(f"{P}/invocations", params={"limit": "0"}),
    ("/invocations", "503"): lambda up, down: down.get(f"{P}/invocations"),
    ("/invocations/{id}/cancel", "200"): lambda up, down: up.post(
        f"{P}/invocations/{_pending(up)}/cancel"
    ),
    ("/invocations/{id}/cancel", "400"): lambda up, down: up.post(f"{P}/invocations/a..b/cancel"),
    ("/invocations/{id}/cancel", "404"): lambda up, down: up.post(f"{P}/invocations/x/cancel"),
    ("/invocations/{id}/cancel", "409"): lambda up, down: up.post(
        f"{P}/invocations/{_resolved(up)}/cancel"
    ),
    ("/invocations/{id}/cancel", "503"): lambda up, down: down.post(f"{P}/invocations/x/cancel"),
    ("/invocations/{id}/tree", "200"): lambda up, down: up.get(
        f"{P}/invocations/{_resolved(up)}/tree"
    ),
    ("/invocations/{id}/tree", "400"): lambda up, down: up.get(f"{P}/invocations/a..b/tree"),
    ("/invocations/{id}/tree", "404"): lambda up, down: up.get(f"{P}/invocations/x/tree"),
    ("/invocations/{id}/tree", "503"): lambda up, down: down.get(f"{P}/invocations/x/tree"),
    ("/promises/{id}", "200"): lambda up, down: up.get(f"{P}/promises/{_awaited(up)}"),
    ("/promises/{id}", "400"): lambda up, down: up.get(f"{P}/promises/a..b"),
    ("/promises/{id}", "404"): lambda up, down: up.get(f"{P}/promises/nobody:1"),
    ("/promises/{id}", "503"): lambda up, down: down.get(f"{P}/promises/nobody:1"),
    **_settle_recipes("resolve", b'{"value":{"ok":true}}'),
    **_settle_recipes("reject", b'{"error":"no"}'),
    **_settle_recipes("cancel", b""),
    ("/health", "200"): lambda up, down: up.get(f"{P}/health"),
    ("/health", "503"): lambda up, down: down.get(f"{P}/health"),
    ("/invocations/{id}/rerun", "201"): lambda up, down: up.post(
        f"{P}/invocations/{_resolved(up)}/rerun"
    ),
    ("/invocations/{id}/rerun", "400"): lambda up, down: up.post(f"{P}/invocations/a..b/rerun"),
    ("/invocations/{id}/rerun", "404"): lambda up, down: up.post(f"{P}/invocations/x/rerun"),
    ("/invocations/{id}/rerun", "409"): lambda up, down: up.post(
        f"{P}/invocations/{_pending(up)}/rerun"
    ),
    ("/invocations/{id}/rerun", "422"): lambda up, down: up.post(
        f"{P}/invocations/{_rejected(up)}/rerun", params={"id": _resolved(up)}
    ),
    ("/invocations/{id}/rerun", "503"): lambda up, down: down.post(f"{P}/invocations/x/rerun"),
    ("/invocations/cancel", "200"): lambda up, down: up.post(
        f"{P}/invocations/cancel", params={"function": "slow"}
    ),
    ("/invocations/cancel", "400"): lambda up, down: up.post(f"{P}/invocations/cancel"),
    ("/invocations/cancel", "503"): lambda up, down: down.post(
        f"{P}/invocations/cancel", params={"function": "slow"}
    ),
    ("/invocations/rerun", "200"): lambda up, down: up.post(
        f"{P}/invocations/rerun", params={"function": "add", "limit": "1"}
    ),
    ("/invocations/rerun", "400"): lambda up, down: up.post(f"{P}/invocations/rerun"),
    ("/invocations/rerun", "503"): lambda up, down: down.post(
        f"{P}/invocations/rerun", params={"function": "add"}
    ),
    ("/functions/{name}/stats", "200"): lambda up, down: up.get(f"{P}/functions/add/stats"),
    ("/functions/{name}/stats", "400"): lambda up, down: up.get(
        f"{P}/functions/add/stats", params={"window": "0"}
    ),
    ("/functions/{name}/stats", "404"): lambda up, down: up.get(f"{P}/functions/nobody/stats"),
    ("/functions/{name}/stats", "503"): lambda up, down: down.get(f"{P}/functions/add/stats"),
}


# Paths served for several methods are keyed "METHOD /path".
def _schedule(client: httpx.Client, body: dict[str, Any] | None = None) -> httpx.Response:
    body = body or {"id": "s-" + uuid.uuid4().hex[:8], "cron": "0 0 1 1 *", "function": "ping"}
    return client.post(f"{P}/schedules", json=body)


def _scheduled(client: httpx.Client) -> str:
    body = {"id": "s-" + uuid.uuid4().hex[:8], "cron": "0 0 1 1 *", "function": "ping"}
    assert _schedule(client, body).status_code == 201
    return str(body["id"])


def _twice(client: httpx.Client) -> httpx.Response:
    body = {"id": _scheduled(client), "cron": "0 0 1 1 *", "function": "ping"}
    return _schedule(client, body)


RECIPES.update(
    {
        ("GET /schedules", "200"): lambda up, down: up.get(f"{P}/schedules"),
        ("GET /schedules", "503"): lambda up, down: down.get(f"{P}/schedules"),
        ("POST /schedules", "200"): lambda up, down: _twice(up),
        ("POST /schedules", "201"): lambda up, down: _schedule(up),
        ("POST /schedules", "400"): lambda up, down: _schedule(
            up, {"id": "s", "cron": "61 * * * *", "function": "ping"}
        ),
        ("POST /schedules", "404"): lambda up, down: _schedule(
            up, {"id": "s", "cron": "0 * * * *", "function": "nobody"}
        ),
        ("POST /schedules", "409"): lambda up, down: _schedule(
            up, {"id": _scheduled(up), "cron": "0 0 2 1 *", "function": "ping"}
        ),
        ("POST /schedules", "413"): lambda up, down: up.post(
            f"{P}/schedules", content=b'{"id":"' + b"x" * (1 << 21) + b'"}', headers=JSON
        ),
        ("POST /schedules", "415"): lambda up, down: up.post(
            f"{P}/schedules", content=b"x", headers={"content-type": "text/plain"}
        ),
        ("POST /schedules", "422"): lambda up, down: _schedule(
            up, {"id": "s", "cron": "0 * * * *", "function": "add", "args": [1]}
        ),
        ("POST /schedules", "503"): lambda up, down: _schedule(down),
        ("GET /schedules/{id}", "200"): lambda up, down: up.get(f"{P}/schedules/{_scheduled(up)}"),
        ("GET /schedules/{id}", "400"): lambda up, down: up.get(f"{P}/schedules/a..b"),
        ("GET /schedules/{id}", "404"): lambda up, down: up.get(f"{P}/schedules/nobody"),
        ("GET /schedules/{id}", "503"): lambda up, down: down.get(f"{P}/schedules/nobody"),
        ("DELETE /schedules/{id}", "204"): lambda up, down: up.delete(
            f"{P}/schedules/{_scheduled(up)}"
        ),
        ("DELETE /schedules/{id}", "400"): lambda up, down: up.delete(f"{P}/schedules/a..b"),
        ("DELETE /schedules/{id}", "404"): lambda up, down: up.delete(f"{P}/schedules/nobody"),
        ("DELETE /schedules/{id}", "503"): lambda up, down: down.delete(f"{P}/schedules/x"),
    }
)


@pytest.fixture(scope="module")
def fastapi_pair() -> Iterator[tuple[httpx.Client, httpx.Client, dict[str, Any]]]:
    """One app whose backend answers, one whose backend is a closed port."""
    with (
        ADAPTERS["fastapi"]() as up,
        ADAPTERS["fastapi"](url=f"http://127.0.0.1:{free_port()}", shutdown_timeout=1) as down,
    ):
        yield up, down, up.get("/openapi.json").json()


def _documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path, operations in spec["paths"].items():
        if not path.startswith(P):
            continue
        route = path.removeprefix(P)
        if route.startswith("/functions/") and route not in (
            "/functions/add",
            "/functions/{name}/stats",
        ):
            continue  # one function's operation stands for them all
        for method, operation in operations.items():
            key = f"{method.upper()} {route}" if len(operations) > 1 else route
            found |= {(key, code) for code in operation["responses"]}
    return found


def test_every_documented_response_is_sent(
    fastapi_pair: tuple[httpx.Client, httpx.Client, dict[str, Any]],
) -> None:
    up, down, spec = fastapi_pair
    assert _documented(spec) == set(RECIPES)
    for (route, code), send in RECIPES.items():
        response = send(up, down)
        assert str(response.status_code) == code, (route, code, response.text[:200])
        method, _, path = route.rpartition(" ")
        documented = spec["paths"][P + path]
        operation = documented[method.lower()] if method else next(iter(documented.values()))
        media = list(operation["responses"][code].get("content", {}))
        if not media:  # a 204
            assert response.content == b"", (route, code)
            continue
        assert response.headers["content-type"].split(";")[0] in media, (route, code)
