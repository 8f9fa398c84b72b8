"""The gateway and worker app of the schedule tests across processes (no tests here).

``add`` and ``slow`` record every execution as ``tests.support.distributed_app``'s
do (``RESONATE_WEB_TEST_EXECLOG``); ``beat`` is declared with
``schedule=$TEST_BEAT_CRON`` (default: once a year), so every process that
starts declares it. Like every test app, it accepts a sixth (seconds) cron field.
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI
from resonate.context import Context

from resonate_web import Functions
from resonate_web._core import cron
from resonate_web.fastapi import ResonateRouter
from tests.support.distributed_app import record

cron._allow_seconds(True)

functions = Functions()


@functions.expose
def add(ctx: Context, a: int, b: int) -> int:
    record(ctx, "add")
    return a + b


@functions.expose
async def slow(ctx: Context, seconds: float, tag: str) -> str:
    record(ctx, "start")
    await asyncio.sleep(seconds)
    record(ctx, "end")
    return tag


def beat(ctx: Context) -> str:
    record(ctx, "beat")
    return "beat"


functions.expose(beat, schedule=os.environ.get("TEST_BEAT_CRON", "0 0 1 1 *"))

app = FastAPI()
app.include_router(ResonateRouter(functions))
