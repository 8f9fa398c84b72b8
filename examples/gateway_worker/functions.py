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
    ``GET /schedules/digest``. The tick's time is in its id: read there rather than
    from the clock, a replay of the tick says the same.
    """
    at = datetime.fromtimestamp(int(ctx.info.id.rsplit("-", 1)[1]) / 1000, UTC)
    return f"digest of {at:%Y-%m-%d %H:%M} UTC"


# ── a saga: steps, and compensations in reverse order when a later step fails ──


def reserve(ctx: Context, trip: str, item: str, fail: bool) -> str:
    """One booking step (a real one would call a supplier)."""
    if fail:
        raise ValueError(f"no {item} available for {trip}")
    return f"{item}:{trip}"


def release(ctx: Context, trip: str, item: str) -> str:
    """Undo one booking step."""
    return f"released {item}:{trip}"


@functions.expose(retry_policy=Never())
async def book_trip(ctx: Context, trip: str, fail_at: str | None = None) -> list[str]:
    """Book a flight, a hotel and a car, in that order. If a step fails, release what
    was booked, newest first, then fail: nothing stays half-booked.

    ``fail_at`` ("flight", "hotel" or "car") makes that step fail, to see it happen.
    Each step and each compensation is a durable step: after a crash the saga resumes
    where it was, without booking anything twice.
    """
    once = ctx.options(retry_policy=Never())
    booked: list[str] = []
    try:
        for item in ("flight", "hotel", "car"):
            booked.append(await once.run(reserve, trip, item, fail_at == item))
    except Exception:
        for done in reversed(booked):
            await once.run(release, trip, done.split(":", 1)[0])
        raise
    return booked


# ── a fan-out: N children in parallel, then gathered ──────────────────────────


def square(ctx: Context, n: int) -> int:
    return n * n


@functions.expose
async def fan_out(ctx: Context, n: int) -> int:
    """Start ``square`` for 0..n-1 at once (each a durable step), then sum what they return."""
    started = [ctx.run(square, i) for i in range(n)]
    return sum([await step for step in started])
