"""``django.tasks`` on ``ResonateBackend``, in process on the embedded backend.

Django's own task API (``@task``, ``enqueue``, ``TaskResult``), the real
runtime and the real embedded backend: a task is an invocation, readable on the
routes by its result id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.django_app import setup

setup()
# django.tasks is Django 6.0 and later: on 5.2 this file is not collected (make compat).

from django.tasks import TaskResultStatus, task, task_backends  # noqa: E402
from django.tasks.base import TaskResult  # noqa: E402
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist  # noqa: E402
from django.utils import timezone  # noqa: E402

from resonate_web.django import client  # noqa: E402
from resonate_web.django.tasks import FUNCTION, InvocationCanceled  # noqa: E402
from tests.support import django_tasks as tasks  # noqa: E402
from tests.support.django_clients import wsgi_client  # noqa: E402


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # A fresh runtime on the embedded backend for each test (override_settings).
    with wsgi_client() as c:
        yield c


def finished(result: TaskResult, timeout: float = 60) -> TaskResult:
    """Refresh ``result`` until it is finished (a liveness bound only)."""
    deadline = time.monotonic() + timeout
    while not result.is_finished:
        assert time.monotonic() < deadline, f"task {result.id} still {result.status}"
        time.sleep(0.02)
        result.refresh()
    return result


def test_an_enqueued_task_succeeds_and_is_an_invocation(http: httpx.Client) -> None:
    result = tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.enqueued_at is not None
    assert result.args == [2, 3] and result.backend == "default"
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.finished_at is not None and result.finished_at >= result.enqueued_at
    assert result.attempts == 1 and result.errors == []
    # The result id is the invocation id: the status route reads it.
    doc = http.get(f"/resonate/invocations/{result.id}").json()
    assert doc["status"] == "resolved" and doc["result"] == 5 and doc["function"] == FUNCTION
    # get_result from the task, by id, as another process would.
    again = tasks.add.get_result(result.id)
    assert again.status == TaskResultStatus.SUCCESSFUL and again.return_value == 5
    assert again.task.func is tasks.add.func and again.args == [2, 3]


def test_an_async_task_runs(http: httpx.Client) -> None:
    result = finished(tasks.async_add.enqueue(4, 4))
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 8


def test_a_raising_task_fails_with_its_exception_class_and_traceback(
    http: httpx.Client,
) -> None:
    result = finished(tasks.refuse.enqueue("o-1"))
    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class is tasks.OrderRefused
    assert "raise OrderRefused" in error.traceback
    assert error.traceback.rstrip().endswith("order o-1 refused")
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018
    builtin = finished(tasks.explode.enqueue("boom"))
    assert builtin.errors[0].exception_class is KeyError
    # Retried by the policy (OPTIONS["RETRY_POLICY"]: two retries) before it failed.
    assert builtin.attempts >= 1


def test_a_failing_attempt_is_retried(http: httpx.Client, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = finished(tasks.flaky.enqueue(str(runs)))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 2 and runs.read_text() == "xx"


def test_a_deferred_task_waits_for_run_after(http: httpx.Client, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    run_after = timezone.now() + timedelta(seconds=1)
    result = tasks.record.using(run_after=run_after).enqueue(str(out), "late")
    read = tasks.record.get_result(result.id)
    # Not due yet: ready, not run (the sleep is a durable promise on the backend).
    assert read.status == TaskResultStatus.READY and not out.exists()
    assert read.task.run_after == run_after.replace(
        microsecond=run_after.microsecond // 1000 * 1000
    )
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == "late"
    assert out.read_text() == "late\n"
    assert result.finished_at is not None and result.finished_at >= run_after


def test_a_canceled_task_is_failed(http: httpx.Client) -> None:
    result = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 1)
    client().cancel(result.id)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is InvocationCanceled


def test_async_enqueue_and_get_result(http: httpx.Client) -> None:
    async def go() -> TaskResult:
        result = await tasks.add.aenqueue(20, 22)
        while not result.is_finished:
            await asyncio.sleep(0.02)
            await result.arefresh()
        return await tasks.add.aget_result(result.id)

    result = asyncio.run(go())
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42


def test_unknown_ids_and_other_invocations_are_not_task_results(http: httpx.Client) -> None:
    backend = task_backends["default"]
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("no-such-invocation")
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("../bad id")
    started = http.post("/resonate/functions/add?wait=10", json={"args": [1, 2]}).json()
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(started["id"])


def test_what_the_backend_cannot_do_honestly_is_refused(http: httpx.Client) -> None:
    with pytest.raises(InvalidTask, match="priority"):
        tasks.add.using(priority=10).enqueue(1, 2)
    with pytest.raises(InvalidTask, match="Queue 'nope'"):
        tasks.add.using(queue_name="nope").enqueue(1, 2)
    with pytest.raises(InvalidTask, match="first argument of 'context'"):
        task(takes_context=True)(tasks.misses_context)
    with pytest.raises(InvalidTask, match="run_after must be an aware"):
        tasks.add.using(run_after=timezone.now().replace(tzinfo=None)).enqueue(1, 2)


def test_the_task_function_is_not_on_the_routes(http: httpx.Client) -> None:
    listed = http.get("/resonate/functions").json()["functions"]
    assert FUNCTION not in {f["name"] for f in listed}
    refused = http.post(f"/resonate/functions/{FUNCTION}", json={"args": ["os.system", [], {}]})
    assert refused.status_code == 404, refused.text


def test_tasks_are_listed_with_the_invocations(http: httpx.Client) -> None:
    result = finished(tasks.add.enqueue(5, 5))
    everything = http.get("/resonate/invocations").json()["invocations"]
    assert result.id in {doc["id"] for doc in everything}
    only_tasks = http.get("/resonate/invocations", params={"function": FUNCTION}).json()
    assert [doc["id"] for doc in only_tasks["invocations"]] == [result.id]


def test_a_task_that_takes_a_context_gets_its_result_and_attempt(
    http: httpx.Client, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    result = finished(tasks.with_context.enqueue(str(runs)))
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    # The first attempt failed and was retried: each saw its own number.
    assert runs.read_text().split() == ["1", "2"]
    seen = result.return_value
    assert seen["id"] == result.id and seen["attempt"] == 2
    assert seen["status"] == TaskResultStatus.RUNNING and seen["args"] == [str(runs)]
    assert seen["backend"] == "default" and seen["run_after"] is None
    done = finished(tasks.async_with_context.enqueue(7))
    assert done.return_value == [done.id, 1, 7]


def test_a_deferred_task_gets_its_context_after_the_wait(
    http: httpx.Client, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run_after = timezone.now() + timedelta(milliseconds=300)
    result = finished(tasks.with_context.using(run_after=run_after).enqueue(str(runs)))
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert runs.read_text().split() == ["1", "2"]
    seen = result.return_value
    assert seen["id"] == result.id and seen["attempt"] == 2
    assert (
        seen["run_after"]
        == run_after.replace(microsecond=run_after.microsecond // 1000 * 1000).isoformat()
    )


def test_a_task_is_retried_by_its_own_policy(http: httpx.Client, tmp_path: Path) -> None:
    own, shared = tmp_path / "own", tmp_path / "shared"
    mine = tasks.stubborn.enqueue(str(own))
    theirs = tasks.stubborn_too.enqueue(str(shared))
    assert finished(mine).status == finished(theirs).status == TaskResultStatus.FAILED
    # RETRY_POLICIES names stubborn: 1 + 4 attempts; the other has RETRY_POLICY's 1 + 2.
    assert len(own.read_text().split()) == 5
    assert len(shared.read_text().split()) == 3
    assert "attempt 5 fails" in mine.errors[0].traceback


def test_retry_policies_are_checked(http: httpx.Client) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from resonate_web.django.tasks import ResonateBackend

    with pytest.raises(InvalidTask, match="RETRY_POLICIES"):
        ResonateBackend("x", {"OPTIONS": {"RETRY_POLICIES": ["not", "a", "mapping"]}})
    bad = {
        "default": {
            "BACKEND": "resonate_web.django.tasks.ResonateBackend",
            "OPTIONS": {"RETRY_POLICIES": {"tests.support.django_tasks.add": "no.such.policy"}},
        }
    }
    with override_settings(TASKS=bad), pytest.raises(ImproperlyConfigured, match=r"no\.such"):
        tasks.add.enqueue(1, 2)
