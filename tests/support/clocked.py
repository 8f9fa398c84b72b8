"""Durable functions that take days, weeks and hours: what the testing kit's tests
run under each framework's test client on a virtual clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from resonate.context import Context
from resonate.retry import Exponential, Never

from resonate_web import Functions

F = TypeVar("F", bound=Callable[..., Any])

#: Attempts per key, in this process.
ATTEMPTS: Counter[str] = Counter()
#: Ticks of ``hourly`` seen, in order.
TICKS: list[str] = []

#: Every function below, ``hourly``'s schedule included.
functions = Functions()
#: The same without the schedule: time moves with no tick to run on the way.
unscheduled = Functions()


def both(**options: Any) -> Callable[[F], F]:
    """Expose in :data:`functions` and :data:`unscheduled` alike."""

    def register(fn: F) -> F:
        functions.expose(fn, **options)
        unscheduled.expose(fn, **options)
        return fn

    return register


@both(timeout=timedelta(days=30))
async def nap(ctx: Context, days: int) -> str:
    """Sleep ``days`` days (a durable timer), then wake."""
    await ctx.sleep(timedelta(days=days))
    return f"woke after {days} days"


def flaky_step(ctx: Context, key: str, failures: int) -> int:
    """Fail the first ``failures`` attempts of ``key``, then return the attempt."""
    ATTEMPTS[key] += 1
    if ATTEMPTS[key] <= failures:
        raise ConnectionError(f"attempt {ATTEMPTS[key]} of {key} failed")
    return ATTEMPTS[key]


#: 2 s, 4 s, 8 s, 16 s between attempts.
BACKOFF = Exponential(delay=1, factor=2, max_retries=4, max_delay=60)


@both(retry_policy=Never())
async def retried(ctx: Context, key: str, failures: int) -> int:
    """Run ``flaky_step`` with exponential backoff; the attempt that succeeded."""
    step = ctx.options(retry_policy=BACKOFF)
    attempt: int = await step.run(flaky_step, key, failures)
    return attempt


@both(retry_policy=Never(), timeout=timedelta(days=30))
async def approve(ctx: Context, request: str) -> Any:
    """Wait a week at most for someone to settle a promise."""
    answer = ctx.promise(timeout=timedelta(weeks=1))
    return await answer


@functions.expose(schedule="0 * * * *", retry_policy=Never())
def hourly(ctx: Context) -> str:
    """Every hour, on the hour (UTC)."""
    TICKS.append(ctx.info.id)
    return ctx.info.id


@both(retry_policy=Never(), timeout=timedelta(days=30))
async def wait_for_someone(ctx: Context) -> Any:
    """Wait for someone to settle a promise, without a timeout of its own."""
    return await ctx.promise()
