"""A ``django.tasks`` backend (Django 6, DEP 14) whose tasks are durable invocations.

::

    TASKS = {
        "default": {
            "BACKEND": "resonate_web.django.tasks.ResonateBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"GROUPS": {"emails": "mailers"}},   # optional
        }
    }

``task.enqueue(...)`` starts one invocation of the internal durable function
``django.task``, which imports the task by its dotted path and calls it (a
``def`` task in a worker thread, with Django's connection handling; an
``async def`` one on the runtime's loop). The :class:`TaskResult` id is the
invocation id, so the status routes and the dashboard show the task. The call
is retried by the SDK's default policy while it raises; ``run_after`` is a
durable sleep before the call, kept by the backend across restarts.

Queues map to worker groups: ``default`` to ``RESONATE["TARGET"]`` (default
``workers``), any other queue to the group of the same name, unless
``OPTIONS["GROUPS"]`` says otherwise. ``manage.py resonate_worker --queue emails``
joins that group. On the embedded backend every task runs in the process that
enqueued it, as the routes' functions do.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings as django_settings  # type: ignore[import-untyped]
from django.db import close_old_connections, transaction  # type: ignore[import-untyped]
from django.tasks import DEFAULT_TASK_QUEUE_NAME, Task  # type: ignore[import-untyped]
from django.tasks.backends.base import BaseTaskBackend  # type: ignore[import-untyped]
from django.tasks.base import (  # type: ignore[import-untyped]
    TaskError,
    TaskResult,
    TaskResultStatus,
)
from django.tasks.exceptions import (  # type: ignore[import-untyped]
    InvalidTask,
    TaskResultDoesNotExist,
)
from django.utils.module_loading import import_string  # type: ignore[import-untyped]
from resonate.context import Context
from resonate.retry import Exponential, RetryPolicy
from resonate.types import PromiseRecord

from resonate_web._core import invocations
from resonate_web._core.exposure import Exposed, Functions
from resonate_web._core.parsing import new_id, validate_id
from resonate_web._core.runtime import is_async
from resonate_web._inprocess import Hosted
from resonate_web.django import conf, outbox
from resonate_web.problems import Problem

__all__ = ["FUNCTION", "InvocationCanceled", "InvocationTimedOut", "ResonateBackend"]

#: The internal durable function every task runs as.
FUNCTION = "django.task"
#: The attribute a task's exception carries its formatted traceback in (pickled with
#: it, read back as a string by :meth:`ResonateBackend.get_result`, never unpickled).
TRACEBACK_ATTRIBUTE = "_resonate_task_traceback"
#: A raising task is retried 3 times (2, 4 and 8 s apart), then it is ``FAILED``;
#: ``OPTIONS["RETRY_POLICY"]`` (a ``resonate.retry`` policy) says otherwise.
DEFAULT_RETRY_POLICY: RetryPolicy = Exponential(delay=1, factor=2, max_retries=3, max_delay=60)


class InvocationCanceled(Exception):
    """A task's invocation was canceled (``POST /invocations/{id}/cancel``)."""


class InvocationTimedOut(Exception):
    """A task's invocation passed its timeout before it settled."""


def _load_task(path: str) -> Task:
    task = import_string(path)
    if not isinstance(task, Task):
        raise TypeError(f"{path!r} is not a django.tasks Task")
    return task


def _call_sync(path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call a ``def`` task in this (worker) thread, as a request would: stale
    connections closed before and after."""
    close_old_connections()
    try:
        return _load_task(path).call(*args, **kwargs)
    except Exception as exc:
        _keep_traceback(exc)
        raise
    finally:
        close_old_connections()


async def _call(path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    task = _load_task(path)
    if not is_async(task.func):
        return await asyncio.to_thread(_call_sync, path, args, kwargs)
    try:
        return await task.acall(*args, **kwargs)
    except Exception as exc:
        _keep_traceback(exc)
        raise


def _keep_traceback(exc: Exception) -> None:
    """Store the traceback on the exception, so the rejection carries it."""
    with contextlib.suppress(AttributeError):  # an exception with __slots__
        setattr(exc, TRACEBACK_ATTRIBUTE, "".join(traceback.format_exception(exc)))


def _run_deferred(ctx: Context, path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return _call_sync(path, args, kwargs)


def retry_policy() -> RetryPolicy:
    """``OPTIONS["RETRY_POLICY"]`` of the first ``ResonateBackend`` in ``TASKS``, else
    :data:`DEFAULT_RETRY_POLICY`: every task runs under it."""
    for params in (getattr(django_settings, "TASKS", None) or {}).values():
        backend = params.get("BACKEND") if isinstance(params, Mapping) else None
        if backend == f"{__name__}.{ResonateBackend.__name__}":
            policy = (params.get("OPTIONS") or {}).get("RETRY_POLICY")
            if policy is not None:
                return import_string(policy) if isinstance(policy, str) else policy  # type: ignore[no-any-return]
    return DEFAULT_RETRY_POLICY


async def run_task(
    ctx: Context,
    task: str,
    args: list[Any],
    kwargs: dict[str, Any],
    run_after: int | None = None,
) -> Any:
    """Run the ``django.tasks`` task at dotted path ``task``, after ``run_after``
    (Unix milliseconds) if given."""
    if run_after is None:
        return await _call(task, args, kwargs)
    # A durable sleep: the backend wakes the invocation at run_after, whatever
    # restarts in between. The call after it is a step, retried on its own.
    remaining = max(run_after - int(time.time() * 1000), 0)
    await ctx.sleep(timedelta(milliseconds=remaining))
    step = ctx.options(retry_policy=retry_policy())
    if is_async(_load_task(task).func):
        return await step.run(_run_deferred_async, task, args, kwargs)
    return await step.run(_run_deferred, task, args, kwargs)


async def _run_deferred_async(
    ctx: Context, path: str, args: list[Any], kwargs: dict[str, Any]
) -> Any:
    return await _call(path, args, kwargs)


def task_functions() -> Functions:
    """The :class:`Functions` holding :data:`FUNCTION`, registered by every Django
    gateway and worker (internal: the routes neither list nor start it)."""
    functions = Functions()
    functions.expose(run_task, name=FUNCTION, internal=True, retry_policy=retry_policy())
    return functions


def _state() -> Hosted:
    return conf.state()


def _when(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class ResonateBackend(BaseTaskBackend):  # type: ignore[misc]
    """Tasks as durable invocations on the backend of ``settings.RESONATE``."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    #: The backend hands tasks out in the order they become ready, not by priority.
    supports_priority = False

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        groups = self.options.get("GROUPS", {})
        if not isinstance(groups, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in groups.items()
        ):
            raise InvalidTask(f"TASKS[{alias!r}]['OPTIONS']['GROUPS'] maps queue names to groups")
        self.groups: dict[str, str] = dict(groups)

    # ── queues and groups ───────────────────────────────────────────────────

    def group_of(self, queue_name: str, default_target: str) -> str:
        """The worker group that runs the tasks of ``queue_name``."""
        if queue_name in self.groups:
            return self.groups[queue_name]
        return default_target if queue_name == DEFAULT_TASK_QUEUE_NAME else queue_name

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        if task.takes_context:
            raise InvalidTask("ResonateBackend does not pass a TaskContext (takes_context=True)")

    # ── enqueue ─────────────────────────────────────────────────────────────

    def _prepare(
        self, task: Task, args: Any, kwargs: Any, id: str | None = None
    ) -> tuple[Hosted, Exposed, str, list[Any], dict[str, Any], TaskResult]:
        self.validate_task(task)
        st = _state()
        exposed = st.runtime.internal(FUNCTION)
        if exposed.mode == "dispatch":
            exposed = dataclasses.replace(
                exposed, target=self.group_of(task.queue_name, st.settings.target)
            )
        run_after = int(task.run_after.timestamp() * 1000) if task.run_after is not None else None
        call_args, call_kwargs = exposed.bind(
            [task.module_path, list(args), dict(kwargs), run_after], {}
        )
        id = new_id() if id is None else validate_id(id)
        result = TaskResult(
            task=task,
            id=id,
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        return st, exposed, id, call_args, call_kwargs, result

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Start the task as a durable invocation; returns once the backend holds it.

        Inside ``transaction.atomic()`` (of ``OPTIONS["DATABASE"]``, default the
        default database) the start goes through the outbox instead: written in
        the transaction, sent after the commit, never if it rolls back
        (``enqueued_at`` is then ``None`` until :meth:`get_result`).
        """
        st, exposed, id, call_args, call_kwargs, result = self._prepare(task, args, kwargs)
        using = self.options.get("DATABASE")
        if transaction.get_connection(using).in_atomic_block:
            outbox.record(st, exposed, id, call_args, call_kwargs, using=using)
            return result
        record, _ = st.portal.call(st.gateway.begin(exposed, id, call_args, call_kwargs))
        object.__setattr__(result, "enqueued_at", _when(record.created_at))
        return result

    async def aenqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        st, exposed, id, call_args, call_kwargs, result = self._prepare(task, args, kwargs)
        record, _ = await st.portal.acall(st.gateway.begin(exposed, id, call_args, call_kwargs))
        object.__setattr__(result, "enqueued_at", _when(record.created_at))
        return result

    # ── results ─────────────────────────────────────────────────────────────

    def get_result(self, result_id: str) -> TaskResult:
        """The task result of invocation ``result_id`` (``TaskResultDoesNotExist`` when
        there is none, or it is not a task)."""
        st = _state()
        return self._result(result_id, *st.portal.call(self._read(st, result_id)))

    async def aget_result(self, result_id: str) -> TaskResult:
        st = _state()
        return self._result(result_id, *await st.portal.acall(self._read(st, result_id)))

    async def _read(self, st: Hosted, id: str) -> tuple[PromiseRecord, dict[str, Any]]:
        try:
            validate_id(id)
        except Problem:
            raise TaskResultDoesNotExist(id) from None
        record = await st.gateway.read(id)
        if record is None or invocations.function_of(record) != FUNCTION:
            raise TaskResultDoesNotExist(id)
        return record, await st.gateway.document(st.settings.prefix, id, record)

    def _result(self, id: str, record: PromiseRecord, doc: dict[str, Any]) -> TaskResult:
        call = invocations.call_of(record)
        assert call is not None
        _, _, stored, _ = call
        path, args, kwargs = stored[0], stored[1], stored[2]
        run_after = stored[3] if len(stored) > 3 else None
        try:
            task = _load_task(path)
        except (ImportError, TypeError) as exc:
            raise TaskResultDoesNotExist(f"{id}: {exc}") from None
        if run_after is not None:
            task = task.using(run_after=_when(run_after))
        errors: list[TaskError] = []
        status = doc["status"]
        last = doc.get("last_error")
        attempts = int(doc.get("attempts") or 0)
        if status == "resolved":
            state = TaskResultStatus.SUCCESSFUL
            attempts = max(attempts, 1)
        elif status == "pending":
            deferred = run_after is not None and run_after > time.time() * 1000
            state = TaskResultStatus.READY if deferred else TaskResultStatus.RUNNING
            if last:
                errors.append(_error(last.get("type"), None, last.get("message")))
        else:
            state = TaskResultStatus.FAILED
            attempts = max(attempts, 1)
            if status == "rejected":
                value = record.value.data
                errors.append(
                    _error(
                        doc["error"]["type"],
                        invocations.error_class_path(value),
                        doc["error"]["message"],
                        invocations.error_attribute(value, TRACEBACK_ATTRIBUTE),
                    )
                )
            else:
                cls = InvocationCanceled if status == "canceled" else InvocationTimedOut
                errors.append(
                    TaskError(
                        exception_class_path=f"{cls.__module__}.{cls.__qualname__}",
                        traceback=f"{cls.__name__}: the invocation was {status}",
                    )
                )
        result = TaskResult(
            task=task,
            id=id,
            status=state,
            enqueued_at=_iso(doc.get("created_at")),
            started_at=None,
            last_attempted_at=_iso(last.get("at")) if last else None,
            finished_at=_iso(doc.get("settled_at")),
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=errors,
            # One entry per attempt the backend recorded: the worker group that ran it.
            worker_ids=[self.group_of(task.queue_name, _state().settings.target)] * attempts,
        )
        if state == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(result, "_return_value", doc.get("result"))
        return result


def _error(
    type_name: Any, path: str | None, message: Any, formatted: str | None = None
) -> TaskError:
    """A :class:`TaskError` from what the backend stored: the class by its dotted path
    (``builtins.ValueError``), the traceback the worker formatted, else the message
    alone (the whole traceback is in the log of the worker that ran the attempt)."""
    name = str(type_name or "Exception")
    if path is None:
        known = isinstance(getattr(builtins, name, None), type)
        path = f"builtins.{name}" if known else "builtins.Exception"
    return TaskError(exception_class_path=path, traceback=formatted or f"{name}: {message or ''}")
