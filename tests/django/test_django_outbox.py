"""Starts that survive the commit: the outbox of ``dispatch()`` and ``enqueue()``.

Real processes and backends: a view that commits while the backend is down
succeeds and its work runs, once, when the backend is back; a web process that
dies right after its commit leaves the start to a worker; a rollback starts
nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.django_app import HAS_TASKS, needs_tasks, setup

setup()

from django.conf import settings as django_settings  # noqa: E402
from django.db import transaction  # noqa: E402

from resonate_web import Problem  # noqa: E402
from resonate_web.django import client, dispatch  # noqa: E402
from resonate_web.django.models import PendingStart  # noqa: E402
from tests.support import procs  # noqa: E402
from tests.support.django_clients import SETTINGS_ENV, wsgi_client  # noqa: E402

pytestmark = pytest.mark.multiprocess

DB = {"DJANGO_TEST_DB": django_settings.DATABASES["default"]["NAME"]}


class Rollback(Exception):
    pass


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait until ``check()`` (a liveness bound only)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def settled(id: str) -> bool:
    try:
        return client().status(id)["status"] != "pending"
    except Problem:
        return False


def worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "django", "resonate_worker", "--group", "workers"]
    env = {**SETTINGS_ENV, **DB, "DJANGO_TEST_OUTBOX_INTERVAL": "0.2"}
    return procs.start_member(argv, url, group="workers", env=env, log=log)


@contextlib.contextmanager
def dev_server_on(port: int, log: Path) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    argv = procs.python_module("resonate_web.cli", "dev", "--port", str(port))
    with procs.process(argv, ready_url=f"{url}/health", log=log):
        yield url


@pytest.mark.parametrize("via", ["dispatch", pytest.param("task", marks=needs_tasks)])
def test_a_commit_while_the_backend_is_down_starts_once_it_is_back(
    tmp_path: Path, via: str
) -> None:
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "runs"
    key = "o-" + uuid.uuid4().hex
    # This process is the web process; nothing listens at the backend's address.
    with wsgi_client(url=url, backend_timeout=2, outbox_interval=0.2) as http:
        answer = http.post(f"/orders/{key}", params={"out": str(out), "via": via})
        assert answer.status_code == 200, answer.text  # the view succeeds
        id = answer.json()["id"]
        # The start waits in the outbox, committed with the order.
        assert PendingStart.objects.filter(pk=id).exists()
        with dev_server_on(port, tmp_path / "dev.log"):
            w = worker(url, tmp_path / "worker.log")
            try:
                eventually(lambda: settled(id), "the invocation did not run")
                assert client().status(id)["status"] == "resolved", (
                    tmp_path / "worker.log"
                ).read_text()
                eventually(lambda: not PendingStart.objects.filter(pk=id).exists(), "row stays")
            finally:
                procs.stop(w)
    # Sent by a sweeper (this process's or the worker's), run once.
    assert out.read_text() == f"{key}\n"


def test_a_web_process_that_dies_after_its_commit_leaves_the_start_to_a_worker(
    backend_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    key = "o-" + uuid.uuid4().hex
    # The process commits, then exits before anything is sent (its first
    # on-commit callback ends it): the outbox is all that remains.
    script = f"""
import os
from tests.support.django_app import HAS_TASKS, needs_tasks, setup
setup()
from django.db import transaction
from resonate_web.django import dispatch
with transaction.atomic():
    transaction.on_commit(lambda: os._exit(0))
    print(dispatch("note", {str(out)!r}, "{key}-f"), flush=True)
    if {HAS_TASKS!r}:
        from tests.support import django_tasks
        print(django_tasks.record.enqueue({str(out)!r}, "{key}-t").id, flush=True)
"""
    expected = [f"{key}-f", f"{key}-t"] if HAS_TASKS else [f"{key}-f"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RESONATE_")},
        **DB,
        "PYTHONPATH": procs.PYTHONPATH,
        "RESONATE_URL": backend_url,
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=procs.ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == len(expected) and PendingStart.objects.filter(pk__in=ids).count() == len(ids)
    w = worker(backend_url, tmp_path / "worker.log")
    try:
        eventually(
            lambda: not PendingStart.objects.filter(pk__in=ids).exists(),
            "the worker did not send the starts",
        )
        with wsgi_client(url=backend_url):
            eventually(lambda: all(settled(i) for i in ids), "the invocations did not run")
            assert {client().status(i)["status"] for i in ids} == {"resolved"}
    finally:
        procs.stop(w)
    assert sorted(out.read_text().split()) == expected


def test_a_rolled_back_transaction_starts_nothing(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    with wsgi_client(outbox_interval=0.2):
        with contextlib.suppress(Rollback), transaction.atomic():
            first = dispatch("note", str(out), "f")
            second = dispatch("note", str(out), "s")
            if HAS_TASKS:
                from tests.support import django_tasks

                second = django_tasks.record.enqueue(str(out), "t").id
            assert PendingStart.objects.filter(pk__in=[first, second]).count() == 2
            raise Rollback
        assert not PendingStart.objects.filter(pk__in=[first, second]).exists()
        # A later commit runs (the runtime works), the rolled-back starts never do.
        with transaction.atomic():
            later = dispatch("note", str(out), "later")
        eventually(lambda: settled(later), "the later dispatch did not run")
        for id in (first, second):
            with pytest.raises(Problem) as missing:
                client().status(id)
            assert missing.value.slug == "not-found"
    assert out.read_text() == "later\n"


def test_the_sweep_interval_is_checked() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from resonate_web.django.conf import outbox_interval

    assert outbox_interval({}) == 5.0 and outbox_interval({"OUTBOX_INTERVAL": 0.5}) == 0.5
    for bad in (0, -1, "soon", True):
        with pytest.raises(ImproperlyConfigured, match="OUTBOX_INTERVAL"):
            outbox_interval({"OUTBOX_INTERVAL": bad})
