"""Functions the tests expose: the example's, plus a few that probe edge cases."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Literal

from resonate.context import Context
from resonate.retry import Exponential, Never

from examples.gateway_worker import functions as example
from resonate_web import Functions
from resonate_web._core import cron

# Test apps (in process and as servers) accept a sixth cron field, seconds, so
# that a schedule ticks within seconds. Never on outside this project's tests.
cron._allow_seconds(True)

#: Executions per key, in this process: how tests see that a replay ran nothing.
EXECUTIONS: Counter[str] = Counter()


def build(mode: Literal["auto", "inline"] = "auto") -> Functions:
    """The test functions; ``mode="inline"`` runs them in the web process on any backend
    (``auto`` dispatches them to workers as soon as ``RESONATE_URL`` is set)."""
    functions = Functions()
    for fn in (example.add, example.slow, example.countdown, example.approval):
        functions.expose(fn, mode=mode)
    functions.expose(example.fail, mode=mode, retry_policy=Never())
    functions.expose(ping, mode=mode)
    functions.expose(count, mode=mode, retry_policy=Never())
    functions.expose(executions, mode=mode)
    functions.expose(hold, mode=mode, retry_policy=Never())
    functions.expose(refusing, mode=mode, retry_policy=EVERY_SECOND)
    functions.expose(wide, mode=mode)
    functions.expose(example.book_trip, mode=mode, retry_policy=Never())
    functions.expose(example.slow, name="slow_timeout", mode=mode, timeout=timedelta(seconds=1))
    functions.expose_remote("remote_add", target="nobody", signature=_remote_add_stub)
    functions.expose_remote("remote_raw", target="nobody")
    return functions


def ping(ctx: Context) -> str:
    return "pong"


def count(ctx: Context, key: str) -> int:
    """Count an execution under ``key``; returns how many there have been."""
    EXECUTIONS[key] += 1
    return EXECUTIONS[key]


def executions(ctx: Context, key: str) -> int:
    return EXECUTIONS[key]


async def wide(ctx: Context, n: int) -> object:
    """``n`` durable steps, then wait for someone to settle a promise."""
    for i in range(n):
        await ctx.run(example.square, i)
    return await ctx.promise()


#: Retried every second, for as long as anyone waits.
EVERY_SECOND = Exponential(delay=1, factor=1, max_retries=100_000, max_delay=1)


def refusing(ctx: Context, reason: str) -> str:
    """Fail every attempt with ``PermissionError(reason)`` (retried every second)."""
    raise PermissionError(reason)


def hold(ctx: Context, started: str, release: str) -> str:
    """Block (a plain ``def``, sleeping) until the file ``release`` exists."""
    Path(started).touch()
    while not Path(release).exists():
        time.sleep(0.02)
    return "released"


def _remote_add_stub(ctx: Context, a: int, b: int) -> int:
    raise NotImplementedError
