"""``django.tasks`` on ``ResonateBackend`` with ``manage.py resonate_worker``, on the dev
server and on Postgres.

The test process enqueues (as a web process would) and reads results; the
tasks run in worker processes, one per queue's group. A deferred task sleeps on
the backend, so a worker that dies while it waits changes nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.django_app import setup

setup()
# django.tasks is Django 6.0 and later: on 5.2 this file is not collected (make compat).

from django.conf import settings as django_settings  # noqa: E402
from django.tasks import TaskResultStatus  # noqa: E402
from django.tasks.base import TaskResult  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from resonate_web import Problem  # noqa: E402
from resonate_web.django import client  # noqa: E402
from tests.support import django_tasks as tasks  # noqa: E402
from tests.support import procs  # noqa: E402
from tests.support.django_clients import SETTINGS_ENV  # noqa: E402

pytestmark = pytest.mark.multiprocess


def worker(url: str, log: Path, *args: str, group: str) -> object:
    argv = [sys.executable, "-m", "django", "resonate_worker", *args]
    return procs.start_member(argv, url, group=group, env=SETTINGS_ENV, log=log)


@pytest.fixture
def gateway(backend_url: str) -> Iterator[str]:
    """This process as a web process on the shared backend."""
    with override_settings(RESONATE={**django_settings.RESONATE, "URL": backend_url}):
        yield backend_url


def timer_exists(id: str) -> bool:
    try:
        client().promises.get(id)
    except Problem:
        return False
    return True


def finished(result: TaskResult, timeout: float = 60) -> TaskResult:
    deadline = time.monotonic() + timeout
    while not result.is_finished:
        assert time.monotonic() < deadline, f"task {result.id} still {result.status}"
        time.sleep(0.05)
        result.refresh()
    return result


def test_workers_run_the_tasks_of_their_queues(gateway: str, tmp_path: Path) -> None:
    default = worker(gateway, tmp_path / "default.log", "--queue", "default", group="workers")
    emails = worker(gateway, tmp_path / "emails.log", "--queue", "emails", group="emails")
    try:
        added = tasks.add.enqueue(2, 40)
        mailed = tasks.send_email.enqueue("a@example.com")
        failed = tasks.refuse.enqueue("o-9")
        runs = tmp_path / "context-runs"
        with_context = tasks.with_context.enqueue(str(runs))
        assert finished(added).status == TaskResultStatus.SUCCESSFUL, (
            tmp_path / "default.log"
        ).read_text()
        assert added.return_value == 42
        # The emails queue ran in its own group's worker.
        assert finished(mailed).return_value == f"sent to a@example.com by {emails.pid}"  # type: ignore[attr-defined]
        assert finished(failed).status == TaskResultStatus.FAILED
        assert failed.errors[0].exception_class is tasks.OrderRefused
        assert "raise OrderRefused" in failed.errors[0].traceback
        # A task that takes a context gets it in the worker: its result id, its attempt.
        seen = finished(with_context).return_value
        assert seen["id"] == with_context.id and seen["attempt"] == 2
        assert seen["pid"] == default.pid  # type: ignore[attr-defined]
        assert runs.read_text().split() == ["1", "2"]
    finally:
        procs.stop(emails)  # type: ignore[arg-type]
        procs.stop(default)  # type: ignore[arg-type]


def test_a_deferred_task_outlives_its_worker(gateway: str, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    first = worker(gateway, tmp_path / "first.log", "--queue", "default", group="workers")
    result = tasks.record.using(run_after=timezone.now() + timedelta(seconds=3)).enqueue(
        str(out), "deferred"
    )
    # The worker took the task and sleeps on the backend: its timer promise exists.
    deadline = time.monotonic() + 30
    while not timer_exists(f"{result.id}:1"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    procs.stop(first, signal.SIGKILL)  # type: ignore[arg-type]
    assert tasks.record.get_result(result.id).status == TaskResultStatus.READY
    second = worker(gateway, tmp_path / "second.log", "--queue", "default", group="workers")
    try:
        assert finished(result).status == TaskResultStatus.SUCCESSFUL
        assert result.return_value == "deferred"
        assert out.read_text() == "deferred\n"
    finally:
        procs.stop(second)  # type: ignore[arg-type]


def test_queues_of_different_groups_need_their_own_workers(gateway: str) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    os.environ.pop("RESONATE_URL", None)
    with pytest.raises(CommandError, match="start one worker per group"):
        call_command("resonate_worker", "--queue", "default", "--queue", "emails", skip_checks=True)


def test_tasks_under_runserver_on_the_embedded_backend(tmp_path: Path) -> None:
    """A project's own views enqueue and read tasks under ``manage.py runserver``,
    the tasks running in the server's process on the embedded backend."""
    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{port}"]
    env = {**SETTINGS_ENV, "DJANGO_TEST_DB": django_settings.DATABASES["default"]["NAME"]}
    with procs.process(argv, env=env, log=tmp_path / "runserver.log") as server:
        procs.wait_answer(f"{base}/resonate/functions", server)

        def outcome(id: str) -> dict[str, object]:
            deadline = time.monotonic() + 60
            while True:
                body: dict[str, object] = httpx.get(f"{base}/task-results/{id}").json()
                if body["status"] in ("SUCCESSFUL", "FAILED"):
                    return body
                assert time.monotonic() < deadline, body
                time.sleep(0.05)

        added = httpx.post(f"{base}/tasks/add", json=[20, 22]).json()
        assert added["status"] == "READY"
        deferred = httpx.post(f"{base}/tasks/add?delay=1", json=[1, 2]).json()
        assert httpx.get(f"{base}/task-results/{deferred['id']}").json()["status"] == "READY"
        failed = httpx.post(f"{base}/tasks/refuse", json=["o-7"]).json()
        assert outcome(added["id"]) == {
            "id": added["id"],
            "status": "SUCCESSFUL",
            "return_value": 42,
        }
        assert outcome(deferred["id"])["return_value"] == 3
        assert outcome(failed["id"])["errors"] == ["tests.support.django_tasks.OrderRefused"]
        # The result id is the invocation id, on the routes.
        doc = httpx.get(f"{base}/resonate/invocations/{added['id']}").json()
        assert doc["status"] == "resolved" and doc["result"] == 42
