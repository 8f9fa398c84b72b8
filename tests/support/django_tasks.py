"""``django.tasks`` tasks the tests enqueue on ``ResonateBackend``."""

from __future__ import annotations

import os
from pathlib import Path

from django.tasks import task
from resonate.retry import Constant

#: The tests' ``OPTIONS["RETRY_POLICY"]``: two quick retries, then the task fails.
RETRIES = Constant(delay=0, max_retries=2)


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


def needs_context(context: object) -> None:
    """A task body asking for a TaskContext (ResonateBackend refuses to make it a task)."""
