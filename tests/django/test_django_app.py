"""The Django app: lazy settings, the app config, system checks, views, CSRF."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from resonate_web._gateway.router import ROUTES
from tests.support.django_app import HAS_TASKS, setup

setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.management.base import SystemCheckError  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import resolve, reverse  # noqa: E402

from resonate_web import Functions  # noqa: E402
from resonate_web.django import conf  # noqa: E402
from resonate_web.django.checks import check_resonate  # noqa: E402
from tests.conformance.helpers import P, assert_problem  # noqa: E402
from tests.support import django_clients, procs  # noqa: E402

FUNCTIONS = "tests.support.django_functions:functions"

#: Exposed for the check of dispatch targets.
bad_target = Functions()
bad_target.expose_remote("nowhere", target="two words")


def resonate(**values: object) -> dict[str, object]:
    return {"FUNCTIONS": [FUNCTIONS], **values}


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    conf.reset()
    yield
    conf.reset()


# ── the app config and lazy settings ────────────────────────────────────────


def test_ready_is_idempotent_and_starts_nothing() -> None:
    code = """
import threading
from tests.support.django_app import setup
setup()
from django.apps import apps
from django.db import connections
from resonate_web.django import conf
config = apps.get_app_config("resonate_web")
config.ready()
config.ready()
assert conf._current is None, "a runtime was built"
assert not [t for t in threading.enumerate() if t.name.startswith("resonate-web")]
assert all(c.connection is None for c in connections.all()), "a database connection"
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=procs.ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_settings_are_read_lazily_and_override_settings_rebuilds() -> None:
    first = conf.state()
    assert first.settings.wait_cap == 30
    with override_settings(RESONATE=resonate(WAIT_CAP=2, PROMISES="any")):
        inner = conf.state()
        assert inner is not first
        assert inner.settings.wait_cap == 2 and inner.settings.promises == "any"
        assert inner.client.run("o-" + uuid.uuid4().hex, "add", 1, 2).result(timeout=5) == 3
        assert inner.runtime.started
    assert not inner.runtime.started  # stopped when the override ended
    assert conf.state().settings.wait_cap == 30


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nope", "settings.RESONATE must be a dict, got str"),
        (resonate(WAIT_CAP="soon"), "settings.RESONATE: setting WAIT_CAP: expected a number"),
        (resonate(URL="ftp://x"), "settings.RESONATE: setting URL: expected an http(s)://"),
        (resonate(NOPE=1), "settings.RESONATE has unknown key(s): 'NOPE'"),
        ({"FUNCTIONS": "no.such.module"}, "cannot import 'no.such.module'"),
        ({"FUNCTIONS": [FUNCTIONS, FUNCTIONS]}, "function 'add' is already exposed"),
        ({"FUNCTIONS": [1]}, "must be a list of dotted module paths"),
        ({1: "x"}, "settings.RESONATE: keys are strings, got 1"),
    ],
)
def test_a_bad_value_is_improperly_configured(value: object, message: str) -> None:
    with override_settings(RESONATE=value), pytest.raises(ImproperlyConfigured) as info:
        conf.state()
    assert message in str(info.value)


def test_without_functions_nothing_is_exposed() -> None:
    with override_settings(RESONATE={}):
        assert conf.state().runtime.exposed == {}


def test_the_tasks_function_is_registered_where_django_has_tasks() -> None:
    # Django 6.0 and later: the internal function that runs django.tasks tasks; before
    # it, no such function, and the routes and functions work without it.
    with django_clients.wsgi_client() as http:
        assert ("django.task" in conf.state().runtime.listed) is HAS_TASKS
        listed = [f["name"] for f in http.get(f"{P}/functions").json()["functions"]]
        assert "add" in listed and "django.task" not in listed
        done = http.post(f"{P}/functions/add?wait=10", json={"args": [2, 3]}).json()
        assert done["status"] == "resolved" and done["result"] == 5


# ── system checks ───────────────────────────────────────────────────────────


def ids(**overrides: object) -> list[str]:
    with override_settings(**overrides):
        return [m.id for m in check_resonate()]


def test_the_test_project_passes_but_for_the_dispatch_warning() -> None:
    # remote_add and remote_raw are dispatched on the embedded backend on purpose.
    assert ids() == ["resonate_web.W002", "resonate_web.W002"]
    assert ids(RESONATE=resonate(URL="http://127.0.0.1:1")) == []


def test_check_unknown_keys() -> None:
    with override_settings(RESONATE=resonate(WAIT=1, URLS="x")):
        (error,) = check_resonate()
    assert error.id == "resonate_web.E001"
    assert "'URLS', 'WAIT'" in error.msg and "WAIT_CAP" in error.hint


def test_check_bad_value() -> None:
    with override_settings(RESONATE=resonate(BODY_LIMIT=-1)):
        (error,) = check_resonate()
    assert error.id == "resonate_web.E002" and "BODY_LIMIT" in error.msg


def test_check_unimportable_functions() -> None:
    assert ids(RESONATE={"FUNCTIONS": ["tests.nowhere"]}) == ["resonate_web.E003"]
    assert ids(RESONATE={"FUNCTIONS": ["tests.support.functions:nothing"]}) == ["resonate_web.E003"]


def test_check_dispatch_without_a_valid_target() -> None:
    with override_settings(
        RESONATE={"FUNCTIONS": ["tests.django.test_django_app:bad_target"], "URL": "http://h:1"}
    ):
        (error,) = check_resonate()
    assert error.id == "resonate_web.E004" and "'nowhere'" in error.msg


def test_check_prefix_that_collides() -> None:
    found = ids(ROOT_URLCONF="tests.support.django_shadow_urls", RESONATE=resonate(URL="http://h"))
    assert found == ["resonate_web.E005"] * len(ROUTES)


def test_check_prefix_setting_that_disagrees_with_the_urlconf() -> None:
    found = ids(RESONATE=resonate(URL="http://h", PREFIX="/api/resonate"))
    assert found == ["resonate_web.W001"]
    assert ids(RESONATE=resonate(URL="http://h", PREFIX="/resonate")) == []


def test_manage_py_check_runs_the_checks() -> None:
    with (
        override_settings(RESONATE=resonate(NOPE=1)),
        pytest.raises(SystemCheckError, match=r"resonate_web\.E001"),
    ):
        call_command("check")


# ── URLs and views ──────────────────────────────────────────────────────────


def test_routes_sharing_a_path_reverse_to_it_and_resolve_by_method() -> None:
    for name in ("list_schedules", "create_schedule"):
        assert reverse(f"resonate:{name}") == f"{P}/schedules"
    for name in ("get_schedule", "delete_schedule"):
        assert reverse(f"resonate:{name}", kwargs={"id": "s"}) == f"{P}/schedules/s"
    client = Client()
    assert client.delete(f"{P}/schedules/nobody").status_code == 404
    assert client.put(f"{P}/schedules/nobody").status_code == 405
    assert sorted(client.put(f"{P}/schedules").headers["Allow"].split(", ")) == ["GET", "POST"]


def test_urls_are_namespaced() -> None:
    assert reverse("resonate:status", kwargs={"id": "a"}) == f"{P}/invocations/a"
    assert reverse("resonate:events", kwargs={"id": "a:1"}) == f"{P}/invocations/a:1/events"
    assert reverse("resonate:start", kwargs={"name": "add"}) == f"{P}/functions/add"


async def test_a_route_resolves_to_the_view_of_the_calling_handler() -> None:
    on_loop = resolve(f"{P}/health").func
    off_loop = await asyncio.to_thread(lambda: resolve(f"{P}/health").func)
    assert inspect.iscoroutinefunction(on_loop)
    assert not inspect.iscoroutinefunction(off_loop)


def test_links_follow_the_include_and_the_script_name() -> None:
    with override_settings(ROOT_URLCONF="tests.support.django_mount_urls"):
        response = Client().post(
            "/api/v1/durable/functions/ping?wait=5", b"", "application/json", SCRIPT_NAME="/app"
        )
    doc = response.json()
    assert doc["links"]["self"] == f"/app/api/v1/durable/invocations/{doc['id']}"


def test_django_test_client_serves_the_routes() -> None:
    response = Client().post(
        f"{P}/functions/add?wait=5", b'{"args": [2, 3]}', content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["result"] == 5
    assert Client().get(f"{P}/health").json()["backend"] == "embedded"
    assert Client().put(f"{P}/functions/add").status_code == 405


async def test_django_async_test_client_serves_the_routes() -> None:
    response = await AsyncClient().post(
        f"{P}/functions/add?wait=5", b'{"args": [2, 3]}', content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["result"] == 5
    events = await AsyncClient().get(f"{P}/invocations/{response.json()['id']}/events")
    body = b"".join([chunk async for chunk in events.streaming_content])
    assert body.startswith(b"event: status\n") and b'"result":5' in body


# ── CSRF ────────────────────────────────────────────────────────────────────

TOKEN = "a" * 32


def started(uid: str) -> bool:
    return Client().get(f"{P}/invocations/{uid}").status_code != 404


def forged(client_class: type) -> object:
    browser = client_class(enforce_csrf_checks=True, headers={"origin": "https://evil.example"})
    browser.cookies["sessionid"] = "the victim's session"
    return browser


def assert_csrf_refused(response: object) -> None:
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert response["content-type"] == "application/problem+json"  # type: ignore[index]
    body = response.json()  # type: ignore[attr-defined]
    assert body["type"] == "urn:resonate-web:problem:forbidden" and "CSRF" in body["detail"]


@pytest.mark.parametrize("form", [{}, {"args": "1"}])
def test_a_cross_site_form_post_cannot_start_an_invocation(form: dict[str, str]) -> None:
    uid = "c-" + uuid.uuid4().hex
    response = forged(Client).post(f"{P}/functions/ping?id={uid}&wait=1", form)  # type: ignore[attr-defined]
    assert_csrf_refused(response)
    assert not started(uid)


@pytest.mark.parametrize("form", [{}, {"args": "1"}])
async def test_a_cross_site_form_post_cannot_start_an_invocation_under_asgi(
    form: dict[str, str],
) -> None:
    uid = "c-" + uuid.uuid4().hex
    response = await forged(AsyncClient).post(f"{P}/functions/ping?id={uid}&wait=1", form)  # type: ignore[attr-defined]
    assert_csrf_refused(response)
    assert not await asyncio.to_thread(started, uid)


def test_a_form_post_without_cookies_is_415() -> None:
    uid = "c-" + uuid.uuid4().hex
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(f"{P}/functions/add?id={uid}", {"args": "1"})
    assert response.status_code == 415
    assert not started(uid)


def test_an_api_client_needs_no_token() -> None:
    api = Client(enforce_csrf_checks=True)
    response = api.post(f"{P}/functions/ping?wait=5", b"", content_type="application/json")
    assert response.status_code == 200


def test_a_same_site_script_with_cookies_sends_the_token() -> None:
    page = Client(enforce_csrf_checks=True)
    page.cookies["csrftoken"] = TOKEN
    response = page.post(
        f"{P}/functions/add?wait=5",
        b'{"args": [1, 1]}',
        content_type="application/json",
        headers={"x-csrftoken": TOKEN},
    )
    assert response.status_code == 200 and response.json()["result"] == 2
    without = page.post(f"{P}/functions/add", b'{"args": [1, 1]}', content_type="application/json")
    assert without.status_code == 403


# ── several processes ───────────────────────────────────────────────────────


def test_embedded_backend_in_several_gunicorn_workers_fails_loudly() -> None:
    with django_clients.gunicorn(workers=2, ready_path="/resonate/health") as base:
        response = httpx.get(f"{base}{P}/health", timeout=10)
        body = assert_problem(response, 503, "backend-unavailable")
        assert "several processes" in body["detail"] and "RESONATE_URL" in body["detail"]
