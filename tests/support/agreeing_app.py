"""What ``tests/core/test_backends_agree.py`` runs: functions that hold a task past its
lease and wait past their timeouts, behind a FastAPI gateway.

The gateway: ``uvicorn tests.support.agreeing_app:app`` (functions run inline on
the embedded backend, on workers with ``RESONATE_URL`` set); the workers:
``resonate-web worker tests.support.agreeing_app``. Each execution of a body
appends ``<pid> <event> <id>`` to the file named by ``RESONATE_WEB_TEST_EXECLOG``.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

from fastapi import FastAPI
from resonate.context import Context
from resonate.retry import Exponential, Never

from resonate_web import Functions
from resonate_web.fastapi import ResonateRouter

functions = Functions()


def record(id: str, event: str) -> None:
    path = os.environ.get("RESONATE_WEB_TEST_EXECLOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {event} {id}\n".encode())
        finally:
            os.close(fd)


@functions.expose(retry_policy=Never())
def blocking(ctx: Context, seconds: float) -> str:
    """A ``def`` body that blocks its thread for ``seconds``."""
    record(ctx.info.id, "start")
    time.sleep(seconds)
    record(ctx.info.id, "end")
    return "blocked"


@functions.expose(retry_policy=Never())
async def awaiting(ctx: Context, seconds: float) -> str:
    """An ``async def`` body that awaits on the loop for ``seconds``."""
    record(ctx.info.id, "start")
    await asyncio.sleep(seconds)
    record(ctx.info.id, "end")
    return "awaited"


def long_step(ctx: Context, seconds: float) -> str:
    record(ctx.info.origin_id, "step")
    time.sleep(seconds)
    return "stepped"


@functions.expose(retry_policy=Never())
async def stepping(ctx: Context, seconds: float) -> str:
    """A durable step that runs for ``seconds``."""
    record(ctx.info.id, "start")
    return await ctx.run(long_step, seconds)


@functions.expose(retry_policy=Never())
async def unanswered(ctx: Context) -> str:
    """Await a promise nobody settles, with a 1-s timeout; say what it raised."""
    try:
        await ctx.promise(timeout=timedelta(seconds=1))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "settled"


@functions.expose(name="overdue", timeout=timedelta(seconds=1), retry_policy=Never())
async def overdue(ctx: Context, seconds: float) -> str:
    """An invocation whose 1-s timeout passes while its body still runs."""
    await asyncio.sleep(seconds)
    return "too late"


def refusing_step(ctx: Context, key: str) -> str:
    raise ValueError(f"no {key} today")


@functions.expose(retry_policy=Never())
async def failing_step(ctx: Context, key: str) -> str:
    """A step that fails every attempt (retried by the SDK's default policy)."""
    return await ctx.run(refusing_step, key)


@functions.expose(retry_policy=Exponential(delay=1, factor=1, max_retries=1000, max_delay=1))
def failing(ctx: Context, key: str) -> str:
    """A function that fails every attempt, retried every second."""
    raise KeyError(key)


app = FastAPI()
app.include_router(ResonateRouter(functions))
