"""The example durable functions: what the docs, the demo and the tests run.

With no ``RESONATE_URL`` they run inline in the web process on the embedded
backend; with one, the gateway dispatches them to the ``RESONATE_TARGET`` group
(default ``workers``) and ``resonate-web worker functions`` runs them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
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
