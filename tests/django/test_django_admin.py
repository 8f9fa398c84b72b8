"""The "Resonate" section of Django's admin: invocations and the outbox.

The real admin (login, permissions, CSRF-protected forms through Django's test
client), the real runtime on the embedded backend.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support.django_app import setup

setup()

from django.contrib.auth.models import Permission, User  # noqa: E402
from django.test import Client  # noqa: E402

from resonate_web import Problem  # noqa: E402
from resonate_web.django import client  # noqa: E402
from resonate_web.django.models import PendingStart  # noqa: E402
from tests.support.django_app import needs_tasks  # noqa: E402
from tests.support.django_clients import wsgi_client  # noqa: E402
from tests.support.functions import EXECUTIONS  # noqa: E402

LIST = "/admin/resonate_web/invocation/"


@pytest.fixture(autouse=True)
def runtime() -> Iterator[None]:
    with wsgi_client():  # a fresh runtime on the embedded backend
        yield


def login(*permissions: str, superuser: bool = False) -> Client:
    name = "a-" + uuid.uuid4().hex[:12]
    if superuser:
        someone = User.objects.create_superuser(name, password="pw")
    else:
        someone = User.objects.create_user(name, password="pw", is_staff=True)
    for codename in permissions:
        someone.user_permissions.add(
            Permission.objects.get(content_type__app_label="resonate_web", codename=codename)
        )
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(someone)
    return browser


def post(browser: Client, url: str, data: dict[str, str]) -> object:
    """A form POST as a browser sends it: with the CSRF token of the page."""
    browser.get(url.rsplit("/", 2)[0] + "/")
    token = browser.cookies["csrftoken"].value
    return browser.post(url, {**data, "csrfmiddlewaretoken": token})


def settled(id: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while (doc := client().status(id))["status"] == "pending":
        assert time.monotonic() < deadline, doc
        time.sleep(0.02)
    return doc


def test_the_section_lists_filters_and_shows_an_invocation() -> None:
    added = client().run(None, "add", 1, 2)
    assert added.result(timeout=10) == 3
    waiting = client().run(None, "wide", 2).id
    admin = login(superuser=True)
    index = admin.get("/admin/").content.decode()
    assert "Resonate" in index and "Invocations" in index and "Pending starts" in index
    page = admin.get(LIST).content.decode()
    assert added.id in page and waiting in page
    pending = admin.get(LIST, {"status": "pending"}).content.decode()
    assert waiting in pending and added.id not in pending
    only_add = admin.get(LIST, {"function": "add"}).content.decode()
    assert added.id in only_add and waiting not in only_add
    # A filter the list route refuses is said as a message, not a crash.
    refused = admin.get(LIST, {"function": "nope"}).content.decode()
    assert "no function named" in refused and added.id not in refused
    detail = admin.get(f"{LIST}{waiting}/").content.decode()
    assert 'id="resonate-status">pending' in detail
    # Its tree: the two steps, and the promise it awaits.
    assert detail.count("<li>") >= 3 and f"{waiting}:3" in detail


def test_actions_resolve_an_awaited_promise_and_cancel() -> None:
    admin = login(superuser=True)
    waiting = client().run(None, "wide", 1).id
    deadline = time.monotonic() + 30
    while not client().status(waiting).get("awaiting"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (promise,) = client().status(waiting)["awaiting"]
    done = post(admin, f"{LIST}{waiting}/resolve/", {"promise": promise, "value": '{"ok": 1}'})
    assert done.status_code == 302  # type: ignore[attr-defined]
    assert settled(waiting)["result"] == {"ok": 1}
    other = client().run(None, "wide", 1).id
    assert post(admin, f"{LIST}{other}/cancel/", {}).status_code == 302  # type: ignore[attr-defined]
    assert client().status(other)["status"] == "canceled"


def test_the_view_permission_reads_and_nothing_more() -> None:
    waiting = client().run(None, "wide", 1).id
    viewer = login("view_invocations")
    assert waiting in viewer.get(LIST).content.decode()
    detail = viewer.get(f"{LIST}{waiting}/").content.decode()
    assert "resonate-cancel" not in detail
    refused = post(viewer, f"{LIST}{waiting}/cancel/", {})
    assert refused.status_code == 403  # type: ignore[attr-defined]
    assert client().status(waiting)["status"] == "pending"
    nobody = login()
    assert nobody.get(LIST).status_code == 403
    assert "Invocations" not in nobody.get("/admin/").content.decode()


def test_a_pending_start_is_sent_from_the_admin() -> None:
    id = uuid.uuid4().hex
    # As a process that died right after its commit leaves it.
    PendingStart.objects.create(id=id, function="add", args=[20, 22], kwargs={})
    admin = login(superuser=True)
    changelist = "/admin/resonate_web/pendingstart/"
    assert id in admin.get(changelist).content.decode()
    token = admin.cookies["csrftoken"].value
    answer = admin.post(
        changelist,
        {"action": "send_now", "_selected_action": [id], "csrfmiddlewaretoken": token},
    )
    assert answer.status_code == 302, answer.content
    assert settled(id)["result"] == 42
    assert not PendingStart.objects.filter(pk=id).exists()
    with pytest.raises(Problem):
        client().status("never-" + id)


def test_the_selected_invocations_are_canceled_from_the_list() -> None:
    admin = login(superuser=True)
    first, second, kept = (client().run(None, "wide", 1).id for _ in range(3))
    page = admin.get(LIST).content.decode()
    assert f'name="ids" value="{first}"' in page
    token = admin.cookies["csrftoken"].value
    answer = admin.post(LIST, {"ids": [first, second], "csrfmiddlewaretoken": token})
    assert answer.status_code == 302
    statuses = [client().status(id)["status"] for id in (first, second, kept)]
    assert statuses == ["canceled", "canceled", "pending"]
    viewer = login("view_invocations")
    assert 'name="ids"' not in viewer.get(LIST).content.decode()
    token = viewer.cookies["csrftoken"].value
    refused = viewer.post(LIST, {"ids": [kept], "csrfmiddlewaretoken": token})
    assert refused.status_code == 403
    assert client().status(kept)["status"] == "pending"


def message_of(browser: Client, url: str) -> str:
    """The page a redirect leads to, with the admin's messages."""
    return browser.get(url).content.decode()


def test_a_settled_invocation_is_rerun_from_its_page() -> None:
    admin = login(superuser=True)
    key = "k-" + uuid.uuid4().hex
    first = client().run(None, "count", key)
    assert first.result(timeout=10) == 1
    page = admin.get(f"{LIST}{first.id}/").content.decode()
    assert 'id="resonate-rerun"' in page and 'id="resonate-cancel"' not in page
    answer = post(admin, f"{LIST}{first.id}/rerun/", {})
    assert answer.status_code == 302  # type: ignore[attr-defined]
    # The new invocation's page, which names the one it reruns.
    new_page = answer["Location"]  # type: ignore[index]
    new = new_page.rstrip("/").rsplit("/", 1)[-1]
    assert new != first.id
    shown = message_of(admin, new_page)
    assert f"is rerun as {new}" in shown and f'id="resonate-rerun-of">{first.id}<' in shown
    # The same call ran again: the function counted a second execution.
    doc = settled(new)
    assert doc["status"] == "resolved" and doc["result"] == 2 and doc["rerun_of"] == first.id
    assert EXECUTIONS[key] == 2 and client().status(first.id)["result"] == 1


def test_a_rejected_invocation_is_rerun_and_a_pending_one_is_refused() -> None:
    admin = login(superuser=True)
    failed = client().run(None, "fail", "boom").id
    assert settled(failed)["status"] == "rejected"
    answer = post(admin, f"{LIST}{failed}/rerun/", {})
    new = answer["Location"].rstrip("/").rsplit("/", 1)[-1]  # type: ignore[index]
    assert settled(new)["status"] == "rejected" and client().status(new)["rerun_of"] == failed
    # Pending: no button, and a POST is the route's 409, said as a message.
    waiting = client().run(None, "wide", 1).id
    assert 'id="resonate-rerun"' not in admin.get(f"{LIST}{waiting}/").content.decode()
    refused = post(admin, f"{LIST}{waiting}/rerun/", {})
    assert refused["Location"].endswith(f"/{waiting}/")  # type: ignore[index]
    assert "still pending: cancel it first" in message_of(admin, refused["Location"])  # type: ignore[index]


def test_rerunning_needs_the_manage_permission() -> None:
    done = client().run(None, "add", 1, 1)
    assert done.result(timeout=10) == 2
    viewer = login("view_invocations")
    assert 'id="resonate-rerun"' not in viewer.get(f"{LIST}{done.id}/").content.decode()
    assert post(viewer, f"{LIST}{done.id}/rerun/", {}).status_code == 403  # type: ignore[attr-defined]
    token = viewer.cookies["csrftoken"].value
    refused = viewer.post(LIST, {"action": "rerun", "ids": [done.id], "csrfmiddlewaretoken": token})
    assert refused.status_code == 403
    listed = Client().get("/resonate/invocations", {"function": "add", "limit": "100"}).json()
    assert not [d for d in listed["invocations"] if d.get("rerun_of") == done.id]
    # The manage permission, without being a superuser, may.
    manager = login("manage_invocations")
    assert post(manager, f"{LIST}{done.id}/rerun/", {}).status_code == 302  # type: ignore[attr-defined]


def test_the_selected_invocations_are_rerun_from_the_list() -> None:
    admin = login(superuser=True)
    key = "k-" + uuid.uuid4().hex
    first = client().run(None, "count", key)
    assert first.result(timeout=10) == 1
    second = client().run(None, "fail", "again")
    assert settled(second.id)["status"] == "rejected"
    waiting = client().run(None, "wide", 1).id
    page = admin.get(LIST).content.decode()
    assert 'value="rerun"' in page and f'name="ids" value="{first.id}"' in page
    token = admin.cookies["csrftoken"].value
    answer = admin.post(
        LIST,
        {"action": "rerun", "ids": [first.id, second.id, waiting], "csrfmiddlewaretoken": token},
    )
    assert answer.status_code == 302
    shown = message_of(admin, answer["Location"])
    assert "2 of 3 invocation(s) rerun." in shown and "still pending" in shown
    reruns = {
        d["rerun_of"]: d["id"]
        for d in Client().get("/resonate/invocations", {"limit": "100"}).json()["invocations"]
        if d.get("rerun_of")
    }
    assert first.id in reruns and second.id in reruns and waiting not in reruns
    assert settled(reruns[first.id])["result"] == 2
    assert settled(reruns[second.id])["status"] == "rejected"
    assert client().status(waiting)["status"] == "pending"
    unknown = admin.post(LIST, {"action": "drop", "ids": [waiting], "csrfmiddlewaretoken": token})
    assert "Unknown action" in message_of(admin, unknown["Location"])
    assert client().status(waiting)["status"] == "pending"


@needs_tasks
def test_a_task_has_no_rerun_and_the_list_says_why() -> None:
    from tests.support import django_tasks

    admin = login(superuser=True)
    result = django_tasks.add.enqueue(1, 2)
    assert settled(result.id)["status"] == "resolved"
    assert 'id="resonate-rerun"' not in admin.get(f"{LIST}{result.id}/").content.decode()
    token = admin.cookies["csrftoken"].value
    answer = admin.post(LIST, {"action": "rerun", "ids": [result.id], "csrfmiddlewaretoken": token})
    shown = message_of(admin, answer["Location"])
    assert "0 of 1 invocation(s) rerun." in shown and "which is not exposed here" in shown
