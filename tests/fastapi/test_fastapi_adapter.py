"""FastAPI specifics: mounting, the dependency, OpenAPI, lifespan."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from resonate_web.fastapi import ResonateDep, ResonateRouter
from tests.support.functions import build


def test_include_router_prefix_and_tags_compose() -> None:
    app = FastAPI()
    app.include_router(ResonateRouter(build()), prefix="/api", tags=["jobs"])
    with TestClient(app) as client:
        response = client.post("/api/resonate/functions/ping", params={"id": "p1"})
        assert response.headers["location"] == "/api/resonate/invocations/p1"
        links = client.get("/api/resonate/invocations/p1", params={"wait": 5}).json()["links"]
        assert links == {
            "self": "/api/resonate/invocations/p1",
            "events": "/api/resonate/invocations/p1/events",
            "tree": "/api/resonate/invocations/p1/tree",
            "cancel": "/api/resonate/invocations/p1/cancel",
        }
        assert client.get("/resonate/health").status_code == 404
        operation = app.openapi()["paths"]["/api/resonate/health"]["get"]
        assert "jobs" in operation["tags"]


def test_prefix_from_settings_and_root_path() -> None:
    app = FastAPI()
    app.include_router(ResonateRouter(build(), prefix="/durable"))
    with TestClient(app, root_path="/proxy") as client:
        response = client.post("/durable/functions/ping", params={"id": "p2"})
        assert response.status_code == 202
        assert response.headers["location"] == "/proxy/durable/invocations/p2"


def test_dependency_hands_handlers_the_started_client() -> None:
    app = FastAPI()
    app.include_router(ResonateRouter(build()))

    @app.post("/orders/{n}")
    async def order(n: int, resonate: ResonateDep) -> dict[str, object]:
        handle = await resonate.run(f"order-{n}", "add", n, n)
        return {"result": await handle.result(timeout=10)}

    with TestClient(app) as client:
        assert client.post("/orders/21").json() == {"result": 42}
        status = client.get("/resonate/invocations/order-21").json()
        assert status["status"] == "resolved"


def test_dependency_without_the_router_says_what_to_do() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x(resonate: ResonateDep) -> None:  # pragma: no cover - never reached
        raise AssertionError

    with (
        TestClient(app, raise_server_exceptions=True) as client,
        pytest.raises(RuntimeError, match="include_router"),
    ):
        client.get("/x")


def test_openapi_has_an_operation_per_function_typed_by_its_signature() -> None:
    app = FastAPI()
    app.include_router(ResonateRouter(build()))
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/resonate/functions/{name}" not in paths
    add = paths["/resonate/functions/add"]["post"]
    schema = add["requestBody"]["content"]["application/json"]["schema"]
    by_position, by_name = schema["anyOf"]
    args = by_position["properties"]["args"]
    assert [item["type"] for item in args["prefixItems"]] == ["integer", "integer"]
    assert (args["minItems"], args["maxItems"]) == (2, 2)
    kwargs = by_name["properties"]["kwargs"]
    assert kwargs["properties"]["a"]["type"] == kwargs["properties"]["b"]["type"] == "integer"
    assert kwargs["required"] == ["a", "b"]
    assert add["description"].startswith("Add two integers")  # the docstring
    wait = next(p for p in add["parameters"] if p["name"] == "wait")
    assert wait["schema"]["type"] == "number"
    assert set(add["responses"]) == {"200", "202", "400", "413", "415", "422", "503"}
    for code in ("400", "413", "415", "422", "503"):
        content = add["responses"][code]["content"]
        assert list(content) == ["application/problem+json"]
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/ProblemDetails"
        }
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for operations in paths.values():
        for operation in operations.values():
            # Only what binds arguments, or compares a call with the one an id names,
            # answers 422 (never FastAPI's own validation).
            op_id = operation["operationId"]
            binds = op_id.startswith("resonate_start_") or op_id in (
                "resonate_create_schedule",
                "resonate_rerun",
            )
            assert ("422" in operation["responses"]) == binds
    events = paths["/resonate/invocations/{id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert "StatusDocument" in spec["components"]["schemas"]


def test_runtime_stops_with_the_app() -> None:
    app = FastAPI()
    router = ResonateRouter(build())
    app.include_router(router)
    with TestClient(app) as client:
        assert router.runtime.started
        assert client.get("/resonate/health").status_code == 200
    assert not router.runtime.started


def test_settings_keywords_reach_the_router() -> None:
    router = ResonateRouter(build(), wait_cap=2.5, prefix="/r")
    assert router.settings.wait_cap == 2.5
    assert router.prefix == "/r"
    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as client:
        assert isinstance(client, httpx.Client)
        assert client.get("/r/functions").status_code == 200
