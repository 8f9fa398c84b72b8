"""The admin's Resonate section in Chromium, against ``manage.py runserver``.

Log in through the admin's own form, find an invocation in the list, open it,
resolve the promise it awaits from its page, then rerun it once it settled.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.test_dashboard import ARGS, CHROMIUM, playwright_api
from tests.support import procs
from tests.support.django_app import setup

setup()

from django.conf import settings as django_settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402

from tests.support.django_clients import SETTINGS_ENV  # noqa: E402

pytestmark = pytest.mark.multiprocess
expect = playwright_api.expect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{port}"]
    env = {**SETTINGS_ENV, "DJANGO_TEST_DB": django_settings.DATABASES["default"]["NAME"]}
    log = tmp_path_factory.mktemp("admin") / "runserver.log"
    with procs.process(argv, env=env, log=log) as proc:
        procs.wait_answer(f"{base}/resonate/functions", proc)
        yield base


@pytest.fixture
def admin_login() -> tuple[str, str]:
    """A superuser in the server's database (made before the browser's loop runs here)."""
    name = "admin-" + uuid.uuid4().hex[:8]
    User.objects.create_superuser(name, password="pw-" + name)
    return name, "pw-" + name


@pytest.fixture
def page() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=ARGS,
        )
        try:
            yield browser.new_context().new_page()
        finally:
            browser.close()


def test_list_detail_resolve_and_rerun_in_the_browser(
    server: str, admin_login: tuple[str, str], page: Any
) -> None:
    name, password = admin_login
    started = httpx.post(f"{server}/resonate/functions/wide", json={"args": [1]}).json()
    id = started["id"]
    deadline = time.monotonic() + 30
    while not httpx.get(f"{server}/resonate/invocations/{id}").json().get("awaiting"):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    page.goto(f"{server}/admin/login/?next=/admin/resonate_web/invocation/")
    page.fill("#id_username", name)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    # The list, with the invocation; open it.
    expect(page.locator("#resonate-invocations")).to_contain_text(id)
    page.click(f"a:text-is('{id}')")
    expect(page.locator("#resonate-status")).to_have_text("pending")
    expect(page.locator("#resonate-tree")).to_contain_text("wide")
    # Resolve the promise it awaits, from the page.
    form = page.locator("form.resonate-resolve")
    form.locator("input[name=value]").fill('"approved"')
    form.locator("input[type=submit]").click()
    expect(page.locator("ul.messagelist")).to_contain_text("is resolved")
    # The invocation resumes and settles on its own time: the page shows it once read again.
    for _ in range(300):
        if page.locator("#resonate-status").text_content() == "resolved":
            break
        page.wait_for_timeout(100)
        page.reload()
    expect(page.locator("#resonate-status")).to_have_text("resolved")
    doc = httpx.get(f"{server}/resonate/invocations/{id}").json()
    assert doc["status"] == "resolved" and doc["result"] == "approved"
    # Settled, it can be rerun: the new invocation's page opens and links back.
    page.click("#resonate-rerun input[type=submit]")
    expect(page.locator("ul.messagelist")).to_contain_text(f"Invocation {id} is rerun as")
    expect(page.locator("#resonate-rerun-of")).to_have_text(id)
    rerun = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert rerun != id
    again = httpx.get(f"{server}/resonate/invocations/{rerun}").json()
    assert again["function"] == "wide" and again["rerun_of"] == id
