"""The example durable functions: what the docs, the demo and the tests run.

With no ``RESONATE_URL`` they run inline in the web process on the embedded
backend; with one, the gateway dispatches them to the ``RESONATE_TARGET`` group
(default ``workers``) and ``resonate-web worker functions`` runs them.

``digest`` runs on a cron schedule: every process that starts creates the
schedule (once), and every tick is an invocation like any other.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from resonate.context import Context
from resonate.retry import Never

from resonate_web import Functions

functions = Functions()


@functions.expose
def add(ctx: Context, a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@functions.expose
async def slow(ctx: Context, seconds: float, tag: str) -> str:
    """Sleep for ``seconds``, then return ``tag``."""
    await asyncio.sleep(seconds)
    return tag


@functions.expose(retry_policy=Never())
def fail(ctx: Context, message: str) -> None:
    """Raise ``ValueError(message)``; exposed without retries, so it rejects at once."""
    raise ValueError(message)


@functions.expose
async def countdown(ctx: Context, n: int, delay: float) -> int:
    """Take ``n`` durable sleeps of ``delay`` seconds; no worker holds it while it sleeps."""
    for _ in range(n):
        await ctx.sleep(timedelta(seconds=delay))
    return n


@functions.expose
async def approval(ctx: Context, request: str) -> Any:
    """Wait for someone to settle a promise; return the value it is resolved with.

    The promise's id shows in the invocation's status document under ``awaiting``.
    """
    return await ctx.promise()


@functions.expose(schedule="*/5 * * * *", retry_policy=Never())
def digest(ctx: Context) -> str:
    """Every five minutes (UTC): one tick, invocation ``digest-{tick time in unix ms}``.

    A scheduled function is called without arguments. Read its ticks with
    ``GET /schedules/digest``.
    """
    return f"digest of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
