"""What ``tests/core/test_flow_control.py`` runs: functions with flow control behind a
FastAPI gateway (inline on the embedded backend, on workers with ``RESONATE_URL``).

Each body appends ``<pid> <event> <id> <detail> <unix time>`` to the file named by
``RESONATE_WEB_TEST_EXECLOG`` as it begins and ends, so a test counts from the
functions themselves how many ran at once, in which order, with what arguments.
"""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import FastAPI
from resonate.context import Context
from resonate.retry import Never

from resonate_web import Concurrency, Debounce, Functions, RateLimit
from resonate_web.fastapi import ResonateRouter

functions = Functions()


def record(id: str, event: str, detail: object = "-") -> None:
    path = os.environ.get("RESONATE_WEB_TEST_EXECLOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            line = f"{os.getpid()} {event} {id} {detail} {time.time():.6f}\n"
            os.write(fd, line.encode())
        finally:
            os.close(fd)


@functions.expose(retry_policy=Never(), concurrency=Concurrency(2, key="customer"))
async def export(ctx: Context, customer: str, n: int, seconds: float = 0.3) -> int:
    """At most two exports per customer at a time."""
    record(ctx.info.id, "start", customer)
    await asyncio.sleep(seconds)
    record(ctx.info.id, "end", customer)
    return n


@functions.expose(concurrency=Concurrency(1))
def exclusive(ctx: Context, seconds: float) -> float:
    """One at a time, across every process: a ``def`` body that blocks its thread."""
    record(ctx.info.id, "start")
    time.sleep(seconds)
    record(ctx.info.id, "end")
    return seconds


@functions.expose(retry_policy=Never(), rate=RateLimit(5, 1.0))
async def paced(ctx: Context, n: int) -> int:
    """At most five begin per second."""
    record(ctx.info.id, "start", n)
    return n


@functions.expose(retry_policy=Never(), rate=RateLimit(2, 60.0, key="account", on_limit="reject"))
async def charge(ctx: Context, account: str) -> str:
    """At most two charges a minute per account; more are refused at the start."""
    return account


@functions.expose(retry_policy=Never(), debounce=Debounce(1.5, key="doc"))
async def reindex(ctx: Context, doc: str, version: int) -> int:
    """Once per quiet period per document, with the last version asked for."""
    record(ctx.info.id, "start", f"{doc}@{version}")
    return version


@functions.expose(retry_policy=Never(), concurrency=Concurrency(1))
async def ranked(ctx: Context, n: int, seconds: float = 0.05) -> int:
    """One at a time; the waiting ones run by priority."""
    record(ctx.info.id, "start", n)
    await asyncio.sleep(seconds)
    record(ctx.info.id, "end", n)
    return n


app = FastAPI()
app.include_router(ResonateRouter(functions))
