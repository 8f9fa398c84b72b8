"""``manage.py resonate_worker``: a worker with Django set up, on the dev server."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from tests.support.django_app import HAS_TASKS, setup

setup()

from django.conf import settings as django_settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.management.base import CommandError  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402

from tests.support import procs  # noqa: E402
from tests.support.django_clients import SETTINGS_ENV, wsgi_client  # noqa: E402
from tests.support.django_functions import ORDERS  # noqa: E402


def test_the_worker_command_completes_an_invocation(tmp_path: Path) -> None:
    key = "w-" + uuid.uuid4().hex
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {ORDERS} (order_key TEXT)")
        cursor.execute(f"INSERT INTO {ORDERS} (order_key) VALUES (%s)", [key])
    connection.close()
    worker_argv = [sys.executable, "-m", "django", "resonate_worker", "--group", "workers"]
    with procs.dev_server(log=tmp_path / "dev.log") as url:
        env = {
            **SETTINGS_ENV,
            "RESONATE_URL": url,
            "DJANGO_TEST_DB": django_settings.DATABASES["default"]["NAME"],
        }
        with procs.process(worker_argv, env=env, log=tmp_path / "worker.log") as worker:
            procs.wait_streams(url, "workers", 1)
            with wsgi_client(url=url) as http:
                started = http.post("/resonate/functions/orders_seen?wait=15", json={"args": [key]})
            doc = started.json()
            # Run by the worker, which read the row through Django's ORM.
            assert doc["status"] == "resolved", (doc, (tmp_path / "worker.log").read_text())
            assert doc["result"] == 1
            assert procs.stop(worker) == 0
        log = (tmp_path / "worker.log").read_text()
        assert "worker ready" in log and "orders_seen" in log


def test_the_worker_command_needs_a_shared_backend() -> None:
    with pytest.raises(CommandError, match="a worker needs a shared backend"):
        call_command("resonate_worker")


def test_the_worker_command_reports_bad_settings() -> None:
    with (
        override_settings(RESONATE={"FUNCTIONS": ["no.such.module"], "URL": "http://h:1"}),
        pytest.raises(CommandError, match=r"cannot import 'no\.such\.module'"),
    ):
        call_command("resonate_worker", skip_checks=True)


def test_queues_need_django_tasks_and_a_backend_that_has_them() -> None:
    # Before Django 6.0 there is no django.tasks: --queue says so; after, a queue no
    # ResonateBackend lists is refused by name.
    expected = r"no ResonateBackend .* 'nope'" if HAS_TASKS else r"need Django 6\.0 or later"
    with (
        override_settings(RESONATE={**django_settings.RESONATE, "URL": "http://h:1"}),
        pytest.raises(CommandError, match=expected),
    ):
        call_command("resonate_worker", "--queue", "nope", skip_checks=True)
