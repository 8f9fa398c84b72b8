"""Django's own login for the routes and the dashboard (``resonate_web.django.auth``).

The real session and authentication middleware, real users in the database, the
routes on the embedded backend: staff do everything, a user with the view
permission reads, anyone else gets 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.django_app import setup

setup()

from django.conf import settings as django_settings  # noqa: E402
from django.contrib.auth.models import Permission, User  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

HOOK = "resonate_web.django.auth.authorize"


@pytest.fixture(autouse=True)
def login_hook() -> Iterator[None]:
    resonate = {**django_settings.RESONATE, "AUTHORIZE": HOOK, "UI": True}
    with override_settings(RESONATE=resonate):
        yield


def user(*permissions: str, staff: bool = False, active: bool = True) -> Client:
    """A client logged in (through the session) as a new user with ``permissions``."""
    someone = User.objects.create_user(
        "u-" + uuid.uuid4().hex[:12], password="pw", is_staff=staff, is_active=active
    )
    for codename in permissions:
        someone.user_permissions.add(
            Permission.objects.get(content_type__app_label="resonate_web", codename=codename)
        )
    client = Client()
    client.force_login(someone)
    return client


def start(client: Client, *args: int) -> object:
    return client.post(
        "/resonate/functions/add?wait=5", {"args": list(args)}, content_type="application/json"
    )


def test_staff_do_everything() -> None:
    staff = user(staff=True)
    started = start(staff, 1, 2)
    assert started.status_code == 200, started.content  # type: ignore[attr-defined]
    id = started.json()["id"]  # type: ignore[attr-defined]
    assert staff.get(f"/resonate/invocations/{id}").json()["result"] == 3
    assert staff.get("/resonate/invocations").status_code == 200
    assert staff.get("/resonate/ui").status_code == 200


def test_the_view_permission_reads_and_nothing_more() -> None:
    id = start(user(staff=True), 2, 2).json()["id"]  # type: ignore[attr-defined]
    viewer = user("view_invocations")
    assert viewer.get(f"/resonate/invocations/{id}").json()["result"] == 4
    assert viewer.get(f"/resonate/invocations/{id}/tree").status_code == 200
    assert viewer.get("/resonate/functions").status_code == 200
    assert viewer.get("/resonate/ui").status_code == 200
    refused = start(viewer, 1, 1)
    assert refused.status_code == 403  # type: ignore[attr-defined]
    assert "manage_invocations" in refused.json()["detail"]  # type: ignore[attr-defined]
    assert viewer.post(f"/resonate/invocations/{id}/cancel").status_code == 403


def test_the_manage_permission_does_everything() -> None:
    manager = user("manage_invocations")
    assert start(manager, 3, 4).json()["result"] == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize("who", ["anonymous", "no permission", "inactive staff"])
def test_anyone_else_is_refused(who: str) -> None:
    client = {
        "anonymous": Client,
        "no permission": user,
        "inactive staff": lambda: user(staff=True, active=False),
    }[who]()
    for response in (
        client.get("/resonate/functions"),
        client.get("/resonate/invocations"),
        client.get("/resonate/ui"),
        start(client, 1, 2),
    ):
        assert response.status_code == 403, (who, response.content)  # type: ignore[attr-defined]
        assert response["Content-Type"] == "application/problem+json"  # type: ignore[index]
