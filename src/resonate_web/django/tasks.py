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
is retried while it raises, by the task's policy (``OPTIONS["RETRY_POLICIES"]``
by task path, else ``OPTIONS["RETRY_POLICY"]``, else :data:`DEFAULT_RETRY_POLICY`);
a task declared with ``takes_context=True`` gets a :class:`TaskContext` first,
whose ``attempt`` counts the attempts. ``run_after`` is a durable sleep before
the call, kept by the backend across restarts.

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
import contextvars
import dataclasses
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings as django_settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.db import close_old_connections, transaction  # type: ignore[import-untyped]
from django.tasks import DEFAULT_TASK_QUEUE_NAME, Task  # type: ignore[import-untyped]
from django.tasks.backends.base import BaseTaskBackend  # type: ignore[import-untyped]
from django.tasks.base import (  # type: ignore[import-untyped]
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
)
from django.tasks.exceptions import (  # type: ignore[import-untyped]
    InvalidTask,
    InvalidTaskBackend,
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


def _call_sync(task: Task, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call a ``def`` task in this (worker) thread, as a request would: stale
    connections closed before and after."""
    close_old_connections()
    try:
        return task.call(*args, **kwargs)
    except Exception as exc:
        _keep_traceback(exc)
        raise
    finally:
        close_old_connections()


async def _call(task: Task, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if not is_async(task.func):
        return await asyncio.to_thread(_call_sync, task, args, kwargs)
    try:
        return await task.acall(*args, **kwargs)
    except Exception as exc:
        _keep_traceback(exc)
        raise


def _keep_traceback(exc: Exception) -> None:
    """Store the traceback on the exception, so the rejection carries it."""
    with contextlib.suppress(AttributeError):  # an exception with __slots__
        setattr(exc, TRACEBACK_ATTRIBUTE, "".join(traceback.format_exception(exc)))


# ── retry policies ───────────────────────────────────────────────────────────


def _policy(value: Any, where: str) -> RetryPolicy:
    """A retry policy given as itself or as its dotted path."""
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(f"{where}: cannot import {value!r}: {exc}") from None
    if not callable(getattr(value, "next", None)):
        raise ImproperlyConfigured(f"{where}: {value!r} is not a resonate.retry policy")
    policy: RetryPolicy = value
    return policy


def _resonate_backend(alias: str) -> ResonateBackend | None:
    from django.tasks import task_backends

    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        return None
    return backend if isinstance(backend, ResonateBackend) else None


def retry_policy() -> RetryPolicy:
    """``OPTIONS["RETRY_POLICY"]`` of the first ``ResonateBackend`` in ``TASKS``, else
    :data:`DEFAULT_RETRY_POLICY`: the policy of a task whose backend is not known."""
    for alias, params in (getattr(django_settings, "TASKS", None) or {}).items():
        backend = params.get("BACKEND") if isinstance(params, Mapping) else None
        if backend == f"{__name__}.{ResonateBackend.__name__}":
            policy = (params.get("OPTIONS") or {}).get("RETRY_POLICY")
            if policy is not None:
                return _policy(policy, f"TASKS[{alias!r}]['OPTIONS']['RETRY_POLICY']")
    return DEFAULT_RETRY_POLICY


def policy_of(task: Task, alias: str | None = None) -> RetryPolicy:
    """The retry policy of ``task`` enqueued on backend ``alias`` (default: the task's
    own): its entry in that backend's ``OPTIONS["RETRY_POLICIES"]``, else the
    backend's ``OPTIONS["RETRY_POLICY"]``, else :data:`DEFAULT_RETRY_POLICY`."""
    backend = _resonate_backend(alias or task.backend)
    return retry_policy() if backend is None else backend.retry_policy_for(task.module_path)


#: The retry policy of the task this asyncio task runs, set before each attempt:
#: the SDK consults the policy of :data:`FUNCTION` right after a failed attempt, in
#: the same asyncio task, and that policy (:class:`_RunningTaskPolicy`) reads it.
_POLICY: contextvars.ContextVar[RetryPolicy | None] = contextvars.ContextVar(
    "resonate_web_task_policy", default=None
)
#: The id whose attempt this asyncio task runs, and the attempt's number: the SDK
#: retries a failed attempt in the same asyncio task, so the next one counts on.
_ATTEMPT: contextvars.ContextVar[tuple[str, int]] = contextvars.ContextVar(
    "resonate_web_task_attempt", default=("", 0)
)


class _RunningTaskPolicy:
    """The policy :data:`FUNCTION` is registered with: the running task's own."""

    def next(self, attempt: int) -> int | None:
        return (_POLICY.get() or retry_policy()).next(attempt)


def _next_attempt(id: str) -> int:
    """The number of the attempt of ``id`` that starts now (1, then 2 on its retry)."""
    last, number = _ATTEMPT.get()
    number = number + 1 if last == id else 1
    _ATTEMPT.set((id, number))
    return number


# ── the durable function ─────────────────────────────────────────────────────


async def run_task(
    ctx: Context,
    task: str,
    args: list[Any],
    kwargs: dict[str, Any],
    run_after: int | None = None,
    backend: str | None = None,
) -> Any:
    """Run the ``django.tasks`` task at dotted path ``task`` (enqueued on ``backend``),
    after ``run_after`` (Unix milliseconds) if given."""
    if run_after is None:
        loaded = _load_task(task)
        _POLICY.set(policy_of(loaded, backend))
        return await _attempt(ctx, loaded, args, kwargs, run_after, backend)
    # A durable sleep: the backend wakes the invocation at run_after, whatever
    # restarts in between. The call after it is a step, retried on its own.
    remaining = max(run_after - int(time.time() * 1000), 0)
    await ctx.sleep(timedelta(milliseconds=remaining))
    step = ctx.options(retry_policy=policy_of(_load_task(task), backend))
    return await step.run(_run_deferred, task, args, kwargs, run_after, backend)


async def _run_deferred(
    ctx: Context,
    path: str,
    args: list[Any],
    kwargs: dict[str, Any],
    run_after: int,
    backend: str | None,
) -> Any:
    return await _attempt(ctx, _load_task(path), args, kwargs, run_after, backend)


async def _attempt(
    ctx: Context,
    task: Task,
    args: list[Any],
    kwargs: dict[str, Any],
    run_after: int | None,
    backend: str | None,
) -> Any:
    """One attempt of the task: with a :class:`TaskContext` first when it takes one."""
    number = _next_attempt(ctx.info.id)
    if task.takes_context:
        context = _task_context(ctx.info.origin_id, task, args, kwargs, run_after, backend, number)
        args = [context, *args]
    return await _call(task, args, kwargs)


def _task_context(
    id: str,
    task: Task,
    args: list[Any],
    kwargs: dict[str, Any],
    run_after: int | None,
    alias: str | None,
    attempt: int,
) -> TaskContext:
    """The :class:`TaskContext` of a running attempt: its :class:`TaskResult` is
    ``RUNNING``, started now, with one worker id (the queue's group) per attempt so
    far, this one included (``context.attempt``)."""
    alias = alias or task.backend
    if alias != task.backend:
        task = task.using(backend=alias)
    if run_after is not None:
        task = task.using(run_after=_when(run_after))
    backend = _resonate_backend(alias)
    target = conf.load_settings().target
    worker = backend.group_of(task.queue_name, target) if backend is not None else target
    now = datetime.now(UTC)
    result = TaskResult(
        task=task,
        id=id,
        status=TaskResultStatus.RUNNING,
        enqueued_at=None,
        started_at=now,
        last_attempted_at=now,
        finished_at=None,
        args=args,
        kwargs=kwargs,
        backend=alias,
        errors=[],
        worker_ids=[worker] * attempt,
    )
    return TaskContext(task_result=result)


def task_functions() -> Functions:
    """The :class:`Functions` holding :data:`FUNCTION`, registered by every Django
    gateway and worker (internal: the routes neither list nor start it)."""
    functions = Functions()
    functions.expose(run_task, name=FUNCTION, internal=True, retry_policy=_RunningTaskPolicy())
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
        policies = self.options.get("RETRY_POLICIES", {})
        if not isinstance(policies, Mapping) or not all(
            isinstance(k, str) and k and v is not None for k, v in policies.items()
        ):
            raise InvalidTask(
                f"TASKS[{alias!r}]['OPTIONS']['RETRY_POLICIES'] maps task paths "
                "('shop.tasks.send_receipt') to retry policies or their dotted paths"
            )
        self.retry_policies: dict[str, Any] = dict(policies)

    def retry_policy_for(self, path: str) -> RetryPolicy:
        """The retry policy of the task at dotted path ``path`` on this backend:
        ``OPTIONS["RETRY_POLICIES"][path]``, else ``OPTIONS["RETRY_POLICY"]``, else
        :data:`DEFAULT_RETRY_POLICY`."""
        where = f"TASKS[{self.alias!r}]['OPTIONS']"
        if path in self.retry_policies:
            return _policy(self.retry_policies[path], f"{where}['RETRY_POLICIES'][{path!r}]")
        policy = self.options.get("RETRY_POLICY")
        if policy is not None:
            return _policy(policy, f"{where}['RETRY_POLICY']")
        return DEFAULT_RETRY_POLICY

    # ── queues and groups ───────────────────────────────────────────────────

    def group_of(self, queue_name: str, default_target: str) -> str:
        """The worker group that runs the tasks of ``queue_name``."""
        if queue_name in self.groups:
            return self.groups[queue_name]
        return default_target if queue_name == DEFAULT_TASK_QUEUE_NAME else queue_name

    # ── enqueue ─────────────────────────────────────────────────────────────

    def _prepare(
        self, task: Task, args: Any, kwargs: Any, id: str | None = None
    ) -> tuple[Hosted, Exposed, str, list[Any], dict[str, Any], TaskResult]:
        self.validate_task(task)
        self.retry_policy_for(task.module_path)  # a policy that cannot be imported: here
        st = _state()
        exposed = st.runtime.internal(FUNCTION)
        if exposed.mode == "dispatch":
            exposed = dataclasses.replace(
                exposed, target=self.group_of(task.queue_name, st.settings.target)
            )
        run_after = int(task.run_after.timestamp() * 1000) if task.run_after is not None else None
        call_args, call_kwargs = exposed.bind(
            [task.module_path, list(args), dict(kwargs), run_after, self.alias], {}
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
