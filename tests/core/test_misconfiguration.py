"""Misconfiguration is loud, at start-up, and says what to do: one test per mistake."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from resonate.context import Context
from resonate.retry import Constant, Never

from resonate_web import Functions, Problem, Settings
from resonate_web.fastapi import ResonateDep, ResonateRouter, problem_handler
from resonate_web.settings import mask_url
from tests.support import procs
from tests.support.functions import build
from tests.support.procs import free_port

if TYPE_CHECKING:
    from decimal import Decimal

LOGGER = "resonate_web"


def _app(functions: Functions, **settings: Any) -> tuple[FastAPI, ResonateRouter]:
    app = FastAPI()
    router = ResonateRouter(functions, settings=Settings.load(environ={}, **settings))
    app.include_router(router)
    return app, router


# ── start-up ─────────────────────────────────────────────────────────────────


def test_start_up_names_the_embedded_backend_and_what_it_loses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = _app(build())
    with caplog.at_level(logging.INFO, LOGGER), TestClient(app):
        pass
    lines = [r.getMessage() for r in caplog.records if "running on" in r.getMessage()]
    assert len(lines) == 1
    assert "embedded in-process backend" in lines[0]
    assert "lost on restart" in lines[0]
    assert "RESONATE_URL" in lines[0]


def test_start_up_names_a_server_backend_without_its_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    app, _ = _app(build(), url=url, shutdown_timeout=1)
    with caplog.at_level(logging.INFO, LOGGER), TestClient(app):
        pass
    lines = [r.getMessage() for r in caplog.records if "running on" in r.getMessage()]
    assert lines == [lines[0]] and f"the Resonate server at {url}" in lines[0]


def test_credentials_are_masked_wherever_a_url_is_shown() -> None:
    assert mask_url("postgresql://app:s3cret@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert mask_url("postgresql://db/app?user=a&password=s3cret") == (
        "postgresql://db/app?user=a&password=***"
    )
    assert mask_url("http://user:pw@h:8001") == "http://user:***@h:8001"
    assert mask_url("http://h:8001") == "http://h:8001"
    settings = Settings.load(environ={}, url="postgresql://app:s3cret@db/app")
    assert "s3cret" not in settings.display_url


def test_an_unknown_resonate_variable_is_a_warning_naming_the_closest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, LOGGER):
        settings = Settings.load(environ={"RESONATE_UR": "http://127.0.0.1:8001"})
        Settings.load(environ={"RESONATE_UR": "http://127.0.0.1:8001"})  # warned once
    assert settings.backend == "embedded"
    warnings = [r.getMessage() for r in caplog.records if "variable RESONATE_UR;" in r.getMessage()]
    assert len(warnings) == 1
    assert "did you mean RESONATE_URL?" in warnings[0]


def test_known_variables_of_the_sdk_and_the_cli_are_not_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {"RESONATE_LOG_LEVEL": "debug", "RESONATE_HOST": "h", "RESONATE_WAIT_CAP": "3"}
    with caplog.at_level(logging.WARNING, LOGGER):
        assert Settings.load(environ=env).wait_cap == 3
    assert not [r for r in caplog.records if "unknown environment variable" in r.getMessage()]


# ── the backend down ─────────────────────────────────────────────────────────


def test_a_refused_connection_is_a_503_at_once_naming_the_backend_and_the_cause() -> None:
    """The backend timeout is far longer than the test's own: the 503 comes from the
    refused connection, not from waiting it out."""
    url = f"http://127.0.0.1:{free_port()}"
    app, _ = _app(build(), url=url, backend_timeout=600, shutdown_timeout=1)
    with TestClient(app) as client:
        for response in (
            client.post("/resonate/functions/add", json={"args": [1, 2]}),
            client.get("/resonate/invocations/x"),
            client.get("/resonate/health"),
        ):
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "1"
            detail = response.json()["detail"]
            assert f"the Resonate server at {url}" in detail
            assert "refused" in detail.lower()


def test_a_postgres_backend_that_is_down_is_a_503_without_the_password() -> None:
    pytest.importorskip("resonate_pg")
    dsn = f"postgresql://app:s3cret@127.0.0.1:{free_port()}/app?connect_timeout=2"
    app, _ = _app(build(), url=dsn, shutdown_timeout=1)
    with TestClient(app) as client:
        response = client.get("/resonate/invocations/x")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "Postgres at postgresql://app:***@127.0.0.1" in detail
    assert "s3cret" not in detail


def test_the_documented_handler_never_waits_forever_with_the_backend_down() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    app, _ = _app(build(), url=url, backend_timeout=600, shutdown_timeout=1)

    @app.get("/hello/{name}")
    async def hello(name: str, resonate: ResonateDep) -> dict[str, object]:
        handle = await resonate.run(f"hello-{name}", "add", len(name), 1)
        return {"result": await handle.result(timeout=30)}

    app.add_exception_handler(Problem, problem_handler)
    with TestClient(app) as client:
        response = client.get("/hello/ada")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:resonate-web:problem:backend-unavailable"
    assert "refused" in response.json()["detail"].lower()


# ── exposing ─────────────────────────────────────────────────────────────────


def _no_ctx(a: int, b: int) -> int:
    return a + b


def _typed_ctx(context: Context, a: int) -> int:
    return a


def _string_ctx(c: "Context", a: int) -> int:  # noqa: UP037 - as a TYPE_CHECKING import reads
    return a


def _loose(ctx: Context, a, b: Decimal) -> None:  # type: ignore[no-untyped-def]
    return None


def test_a_function_without_the_context_first_is_refused() -> None:
    with pytest.raises(TypeError, match=r"takes the Context first .* first parameter is 'a'"):
        Functions().expose(_no_ctx)
    Functions().expose(_typed_ctx)
    Functions().expose(_string_ctx)


@pytest.mark.parametrize("name", ["a/b", "with space", ".hidden", "a..b", "x" * 200])
def test_a_name_outside_the_id_alphabet_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cannot expose"):
        Functions().expose(_typed_ctx, name=name)
    with pytest.raises(ValueError, match="cannot expose"):
        Functions().expose_remote(name)
    with pytest.raises(ValueError, match="cannot expose"):
        Functions().expose_remote("")


def test_parameters_that_validate_as_any_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, LOGGER):
        Functions().expose(_loose)
    (warning,) = [r.getMessage() for r in caplog.records if "_loose" in r.getMessage()]
    assert "'a', 'b'" in warning and "accept any JSON value" in warning


def test_a_duplicate_name_says_where_the_first_was_exposed() -> None:
    functions = Functions()
    functions.expose(_typed_ctx, name="twice")
    with pytest.raises(ValueError, match=r"already exposed, by _typed_ctx \(.*test_misconf"):
        functions.expose(_string_ctx, name="twice")
    with pytest.raises(ValueError, match="already exposed"):
        functions.expose_remote("twice")


def test_a_function_exposed_after_the_router_was_built_is_served() -> None:
    functions = build()
    app, _ = _app(functions)
    with TestClient(app) as client:
        functions.expose(_typed_ctx, name="late")
        response = client.post("/resonate/functions/late?wait=5", json={"args": [7]})
        assert response.status_code == 200, response.text
        assert response.json()["result"] == 7
        names = [f["name"] for f in client.get("/resonate/functions").json()["functions"]]
        assert "late" in names
        assert "/resonate/functions/late" in client.get("/openapi.json").json()["paths"]


# ── retry policies and failures you can see ─────────────────────────────────


def _flaky(ctx: Context, key: str) -> str:
    raise RuntimeError(f"flaky {key}")


def test_every_failed_attempt_is_logged_with_id_attempt_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    functions = Functions()
    functions.expose(_flaky, name="flaky", retry_policy=Constant(delay=0, max_retries=2))
    app, _ = _app(functions)
    id = "flaky-" + uuid.uuid4().hex[:8]
    with caplog.at_level(logging.WARNING, LOGGER), TestClient(app) as client:
        doc = client.post(f"/resonate/functions/flaky?id={id}&wait=10", json={"args": ["k"]})
        assert doc.json()["status"] == "rejected"
    records = [r for r in caplog.records if f"invocation {id}" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.WARNING] * 3
    messages = [r.getMessage() for r in records]
    assert "attempt 1 failed with RuntimeError: flaky k; retrying in 0s" in messages[0]
    assert "attempt 2 failed" in messages[1]
    assert "attempt 3 failed" in messages[2] and "no retry left" in messages[2]
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in records)


def test_functions_show_their_retry_policy() -> None:
    functions = Functions()
    functions.expose(_typed_ctx, name="defaulted")
    functions.expose(_typed_ctx, name="never", retry_policy=Never())
    functions.expose(_typed_ctx, name="timed", timeout=timedelta(seconds=3))
    functions.expose_remote("remote")
    app, _ = _app(functions)
    with TestClient(app) as client:
        listed = {f["name"]: f for f in client.get("/resonate/functions").json()["functions"]}
    assert listed["defaulted"]["retry_policy"] == {
        "kind": "exponential",
        "delay": 1,
        "max_retries": 30,
        "factor": 2,
        "max_delay": None,
    }
    assert listed["never"]["retry_policy"] == {"kind": "never"}
    assert listed["remote"]["retry_policy"] is None
    assert listed["defaulted"]["description"] is None


# ── a real server with the backend down ──────────────────────────────────────


@pytest.mark.multiprocess
def test_a_server_whose_backend_is_down_still_stops_on_sigterm() -> None:
    """The client's connections keep retrying a dead backend; shutdown is bounded
    by RESONATE_SHUTDOWN_TIMEOUT, so uvicorn exits on SIGTERM instead of hanging."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESONATE_")}
    env.update(
        PYTHONPATH=procs.PYTHONPATH,
        RESONATE_URL=f"http://127.0.0.1:{free_port()}",
        RESONATE_SHUTDOWN_TIMEOUT="1",
    )
    argv = [str(procs.BIN / "uvicorn"), "tests.support.fastapi_app:app", "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, cwd=procs.ROOT, stderr=subprocess.PIPE)
    try:
        procs.wait_answer(f"{base}/resonate/functions", proc)
        assert httpx.get(f"{base}/resonate/health", timeout=30).status_code == 503
        proc.send_signal(signal.SIGTERM)
        # Liveness: it exits by itself (uvicorn re-raises the signal once it has shut down).
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert proc.stderr is not None
        log = proc.stderr.read().decode()
    finally:
        procs.stop(proc, signal.SIGKILL)
    assert "running on the Resonate server at http://127.0.0.1:" in log
    assert "Application shutdown complete" in log  # the lifespan ran to its end


# ── a 404 says why, where the backend forgets ───────────────────────────────


@pytest.mark.multiprocess
def test_a_404_on_the_dev_server_says_it_keeps_no_state_across_restarts() -> None:
    with procs.dev_server() as url:
        app, router = _app(build(), url=url)
        with TestClient(app) as client:
            missing = client.get("/resonate/invocations/started-before-a-restart")
            assert missing.status_code == 404
            assert "keeps no state across restarts" in missing.json()["detail"]
            with pytest.raises(Problem, match="keeps no state across restarts"):
                router.hosted.client.status("started-before-a-restart")


def test_a_404_elsewhere_says_nothing_about_restarts() -> None:
    app, _ = _app(build())
    with TestClient(app) as client:
        detail = client.get("/resonate/invocations/nope").json()["detail"]
    assert "restart" not in detail and "embedded backend keeps" in detail
