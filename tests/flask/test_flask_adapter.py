"""Flask specifics: the extension, its configuration, the client facade, the CLI."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask, current_app, jsonify
from resonate.context import Context

from examples.gateway_worker import functions as example
from resonate_web import ConfigurationError, Functions
from resonate_web.flask import EXTENSION_KEY, Resonate
from tests.support.functions import build
from tests.support.procs import free_port

P = "/resonate"


def uid() -> str:
    return "fl-" + uuid.uuid4().hex[:12]


def greeting(ctx: Context, name: str) -> str:
    """An inline function reading the app's config through ``current_app``."""
    return f"{current_app.config['GREETING']}, {name} ({current_app.name})"


async def agreeting(ctx: Context, name: str) -> str:
    return f"{current_app.config['GREETING']}, {name}"


@pytest.fixture
def resonate() -> Iterator[Resonate]:
    functions = build()
    functions.expose(greeting)
    functions.expose(agreeting)
    extension = Resonate(functions=functions)
    apps: list[Flask] = []
    original = extension.init_app

    def init_app(app: Flask) -> None:
        original(app)
        apps.append(app)

    extension.init_app = init_app  # type: ignore[method-assign]
    yield extension
    for app in apps:
        extension.shutdown(app)


def make_app(resonate: Resonate, name: str = "app", **config: object) -> Flask:
    app = Flask(name)
    app.config.update(config)
    resonate.init_app(app)
    return app


def test_app_factory_state_lives_in_app_extensions(resonate: Resonate) -> None:
    before = dict(vars(resonate))
    threads = set(threading.enumerate())
    app = make_app(resonate)
    assert dict(vars(resonate)).keys() == before.keys()
    state = app.extensions[EXTENSION_KEY]
    assert state.settings.prefix == "/resonate"
    assert not state.runtime.started  # nothing starts before the first use
    assert set(threading.enumerate()) <= threads
    with app.test_client() as client:
        assert client.get(f"{P}/health").json == {"status": "ok", "backend": "embedded"}
    assert state.runtime.started


def test_resonate_app_constructor_initializes_at_once() -> None:
    app = Flask("direct")
    extension = Resonate(app, build())
    assert EXTENSION_KEY in app.extensions
    with app.test_client() as client:
        assert client.get(f"{P}/functions").status_code == 200
    extension.shutdown(app)


def test_init_app_twice_is_an_error(resonate: Resonate) -> None:
    app = make_app(resonate)
    with pytest.raises(RuntimeError, match="already initialized"):
        resonate.init_app(app)
    with pytest.raises(RuntimeError, match="already initialized"):
        Resonate(functions=build()).init_app(app)


def test_forgotten_init_app_says_what_to_do(resonate: Resonate) -> None:
    app = Flask("forgotten")
    with app.app_context(), pytest.raises(RuntimeError, match=r"init_app\(app\)"):
        resonate.client.run("x", "add", 1, 2)


def test_several_apps_each_with_their_own_configuration(resonate: Resonate) -> None:
    one = make_app(resonate, "one", RESONATE_PREFIX="/one", GREETING="Hello")
    two = make_app(resonate, "two", RESONATE_PREFIX="/two", GREETING="Hi", RESONATE_WAIT_CAP=2)
    assert one.extensions[EXTENSION_KEY].settings.wait_cap == 30
    assert two.extensions[EXTENSION_KEY].settings.wait_cap == 2
    id = uid()
    with one.test_client() as c1, two.test_client() as c2:
        first = c1.post(
            "/one/functions/greeting", query_string={"id": id, "wait": 5}, json={"args": ["ada"]}
        )
        assert first.json["result"] == "Hello, ada (one)"
        assert first.json["links"]["self"] == f"/one/invocations/{id}"
        assert c1.get("/two/functions").status_code == 404
        # Each app has its own runtime: the other one does not know the id.
        assert c2.get(f"/two/invocations/{id}").status_code == 404
        second = c2.post(
            "/two/functions/agreeting", query_string={"wait": 5}, json={"args": ["bo"]}
        )
        assert second.json["result"] == "Hi, bo"
    assert one.extensions[EXTENSION_KEY].portal is not two.extensions[EXTENSION_KEY].portal


def test_settings_precedence_extension_then_config_then_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESONATE_WAIT_CAP", "3")
    monkeypatch.setenv("RESONATE_KEEPALIVE", "7")
    monkeypatch.setenv("FLASK_RESONATE_BODY_LIMIT", "1000")
    extension = Resonate(functions=build(), max_waiters=9)
    app = Flask("precedence")
    app.config.from_prefixed_env()
    app.config["RESONATE_MAX_WAITERS"] = 10
    app.config["RESONATE_WAIT_CAP"] = 4
    extension.init_app(app)
    settings = app.extensions[EXTENSION_KEY].settings
    assert settings.max_waiters == 9  # the extension's keyword over the app config
    assert settings.body_limit == 1000  # FLASK_RESONATE_BODY_LIMIT via from_prefixed_env
    assert settings.wait_cap == 4  # the app config over the environment
    assert settings.keepalive == 7  # the environment when nothing else says
    extension.shutdown(app)


def test_bad_configuration_is_reported_by_the_core_parser(resonate: Resonate) -> None:
    with pytest.raises(ConfigurationError, match="unknown resonate-web setting 'RESONATE_UR'"):
        make_app(resonate, RESONATE_UR="http://x")
    with pytest.raises(ConfigurationError, match="setting WAIT_CAP"):
        make_app(resonate, RESONATE_WAIT_CAP="soon")
    with pytest.raises(ConfigurationError, match="unknown resonate-web setting"):
        Resonate(functions=build(), wait=3)
    with pytest.raises(ConfigurationError, match="setting PREFIX"):
        Resonate(functions=build(), prefix="jobs")


def test_a_problem_raised_in_a_view_answers_as_problem_json(resonate: Resonate) -> None:
    app = make_app(resonate)

    @app.post("/bad")
    def bad() -> object:
        return jsonify(id=resonate.client.run(None, "add", "x", 1).id)

    with app.test_client() as client:
        response = client.post("/bad")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:resonate-web:problem:invalid-arguments"
    assert response.json["instance"] == "/bad"


def test_sync_client_in_ordinary_views(resonate: Resonate) -> None:
    app = make_app(resonate, GREETING="Hey")

    @app.post("/orders/<int:n>")
    def order(n: int) -> object:
        handle = resonate.client.run(f"order-{n}", "add", n, n)
        return jsonify(id=handle.id, result=handle.result(timeout=5), done=handle.done())

    @app.get("/orders/<int:n>")
    def order_status(n: int) -> object:
        return jsonify(result=resonate.client.get(f"order-{n}").result(timeout=5))

    @app.post("/by-object")
    def by_object() -> object:
        return jsonify(result=resonate.client.run(uid(), example.add, 1, 1).result(timeout=5))

    with app.test_client() as client:
        assert client.post("/orders/21").json == {"id": "order-21", "result": 42, "done": True}
        assert client.get("/orders/21").json == {"result": 42}
        assert client.get(f"{P}/invocations/order-21").json["status"] == "resolved"
        assert client.post("/by-object").json == {"result": 2}


def test_async_client_in_async_views(resonate: Resonate) -> None:
    app = make_app(resonate, GREETING="Hey")

    @app.post("/async/<name>")
    async def hello(name: str) -> object:
        handle = await resonate.async_client.run(f"hello-{name}", "agreeting", name)
        return jsonify(id=handle.id, result=await handle.result(timeout=10))

    with app.test_client() as client:
        # Each request runs on its own event loop; the client lives on none of them.
        assert client.post("/async/ada").json == {"id": "hello-ada", "result": "Hey, ada"}
        assert client.post("/async/bo").json == {"id": "hello-bo", "result": "Hey, bo"}


def test_promises_through_the_client(resonate: Resonate) -> None:
    app = make_app(resonate)
    id = uid()
    with app.test_client() as client:
        started = client.post(
            f"{P}/functions/approval", query_string={"id": id, "wait": 2}, json={"args": ["ok?"]}
        )
        assert started.json["awaiting"] == [f"{id}:1"]
        with app.app_context():
            resonate.client.promises.resolve(f"{id}:1", "approved")
        done = client.get(f"{P}/invocations/{id}", query_string={"wait": 5}).json
        assert done["status"] == "resolved" and done["result"] == "approved"


def test_inline_functions_run_with_an_app_context(resonate: Resonate) -> None:
    app = make_app(resonate, GREETING="Bonjour")
    with app.test_client() as client:
        doc = client.post(
            f"{P}/functions/greeting", query_string={"wait": 5}, json={"args": ["ada"]}
        )
        assert doc.json["result"] == "Bonjour, ada (app)"
        doc = client.post(
            f"{P}/functions/agreeting", query_string={"wait": 5}, json={"kwargs": {"name": "bo"}}
        )
        assert doc.json["result"] == "Bonjour, bo"


def test_script_name_and_prefix_reach_the_links(resonate: Resonate) -> None:
    app = make_app(resonate, RESONATE_PREFIX="/api/jobs")
    with app.test_client() as client:
        response = client.post(
            "/api/jobs/functions/ping", query_string={"id": "p1"}, base_url="http://localhost/proxy"
        )
        assert response.status_code in (200, 202)
        assert response.json["links"]["self"] == "/proxy/api/jobs/invocations/p1"
        if response.status_code == 202:
            assert response.headers["Location"] == "/proxy/api/jobs/invocations/p1"


def test_empty_prefix_mounts_at_the_root(resonate: Resonate) -> None:
    app = make_app(resonate, RESONATE_PREFIX="/")
    with app.test_client() as client:
        assert client.get("/health").status_code == 200


def test_multiprocess_server_on_the_embedded_backend_fails_loudly(resonate: Resonate) -> None:
    app = make_app(resonate, TESTING=True)  # a view's exception reaches the test

    @app.get("/mine")
    def mine() -> object:
        return jsonify(id=resonate.client.run(uid(), "ping").id)

    multi = {"multiprocess": True}
    with app.test_client() as client:
        assert client.get(f"{P}/health").status_code == 200
        for response in (
            client.get(f"{P}/health", **multi),
            client.post(f"{P}/functions/ping", **multi),
            client.get(f"{P}/functions", **multi),
        ):
            assert response.status_code == 503
            assert response.content_type == "application/problem+json"
            body = response.json
            assert body["type"] == "urn:resonate-web:problem:backend-unavailable"
            assert "RESONATE_URL" in body["detail"] and "gunicorn -w 1" in body["detail"]
        # The refusal sticks for the whole process, facade included.
        assert client.get(f"{P}/health").status_code == 503
        with pytest.raises(ConfigurationError, match="several processes"):
            client.get("/mine")


def test_multiprocess_server_with_a_shared_backend_is_fine(resonate: Resonate) -> None:
    app = make_app(resonate, RESONATE_URL=f"http://127.0.0.1:{free_port()}")
    with app.test_client() as client:
        response = client.get(f"{P}/functions", multiprocess=True)
        assert response.status_code == 200
        assert {f["mode"] for f in response.json["functions"]} == {"dispatch"}


def test_shutdown_stops_the_runtime(resonate: Resonate) -> None:
    app = make_app(resonate)
    state = app.extensions[EXTENSION_KEY]
    with app.test_client() as client:
        client.get(f"{P}/health")
    assert state.runtime.started
    began = time.monotonic()
    resonate.shutdown(app)
    assert not state.runtime.started
    assert time.monotonic() - began < state.settings.shutdown_timeout + 2


def test_worker_command_needs_a_shared_backend(resonate: Resonate) -> None:
    app = make_app(resonate)
    result = app.test_cli_runner().invoke(args=["resonate", "worker"])
    assert result.exit_code == 1
    assert "RESONATE_URL" in result.output


def test_cli_group_lists_worker(resonate: Resonate) -> None:
    app = make_app(resonate)
    result = app.test_cli_runner().invoke(args=["resonate", "--help"])
    assert result.exit_code == 0 and "worker" in result.output


def test_expose_on_the_extension() -> None:
    extension = Resonate()

    @extension.expose
    def double(ctx: Context, n: int) -> int:
        return 2 * n

    extension.expose_remote("far", target="elsewhere")
    assert isinstance(extension.functions, Functions)
    app = Flask("exposing")
    extension.init_app(app)
    with app.test_client() as client:
        response = client.post(
            "/resonate/functions/double", query_string={"wait": 5}, json={"args": [4]}
        )
        assert response.json["result"] == 8
        names = {f["name"]: f for f in client.get("/resonate/functions").json["functions"]}
        assert names["far"]["target"] == "elsewhere"
    extension.shutdown(app)
