"""``django.tasks`` tasks the tests enqueue on ``ResonateBackend``."""

from __future__ import annotations

import os
from pathlib import Path

from django.tasks import TaskContext, task
from resonate.retry import Constant

#: The tests' ``OPTIONS["RETRY_POLICY"]``: two quick retries, then the task fails.
RETRIES = Constant(delay=0, max_retries=2)
#: ``stubborn``'s own policy (``OPTIONS["RETRY_POLICIES"]``): four quick retries.
STUBBORN_RETRIES = Constant(delay=0, max_retries=4)


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def async_add(a: int, b: int) -> int:
    return a + b


@task
def explode(message: str) -> None:
    raise KeyError(message)


class OrderRefused(Exception):
    """An application's own exception class."""


@task
def refuse(order: str) -> None:
    raise OrderRefused(f"order {order} refused")


@task(queue_name="emails")
def send_email(to: str) -> str:
    return f"sent to {to} by {os.getpid()}"


@task
def record(path: str, token: str) -> str:
    """Append ``token`` to the file at ``path``: each run leaves one line."""
    with Path(path).open("a") as out:
        out.write(token + "\n")
    return token


@task
def flaky(path: str) -> int:
    """Fail on the first attempt (counted in the file at ``path``), then succeed."""
    file = Path(path)
    with file.open("a") as out:
        out.write("x")
    runs = len(file.read_text())
    if runs < 2:
        raise RuntimeError(f"attempt {runs} fails")
    return runs


def misses_context(order: str) -> None:
    """A task body that says it takes a context but has no ``context`` parameter."""


def _count_run(path: str, line: str) -> int:
    """Append ``line`` to the file at ``path``; how many lines it has now."""
    with Path(path).open("a") as out:
        out.write(line + "\n")
    return len(Path(path).read_text().splitlines())


@task(takes_context=True)
def with_context(context: TaskContext, path: str) -> dict[str, object]:
    """Record the attempt the context names; fail the first one, then say what the
    context holds."""
    result = context.task_result
    runs = _count_run(path, str(context.attempt))
    if runs < 2:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return {
        "id": result.id,
        "attempt": context.attempt,
        "status": result.status,
        "args": result.args,
        "backend": result.backend,
        "run_after": result.task.run_after.isoformat() if result.task.run_after else None,
        "pid": os.getpid(),
    }


@task(takes_context=True)
async def async_with_context(context: TaskContext, n: int) -> list[object]:
    return [context.task_result.id, context.attempt, n]


@task
def stubborn(path: str) -> None:
    """Fail every attempt, leaving a line each: retried by its own policy."""
    raise RuntimeError(f"attempt {_count_run(path, 'x')} fails")


@task
def stubborn_too(path: str) -> None:
    """The same, retried by the backend's policy."""
    raise RuntimeError(f"attempt {_count_run(path, 'x')} fails")
