"""What the multi-process tests run (no tests here): the example functions,
with ``add`` and ``slow`` recording every execution, and a FastAPI gateway.

Workers: ``resonate-web worker tests.support.distributed_app``; gateways:
``uvicorn tests.support.distributed_app:app`` with ``RESONATE_URL`` set, so every
function is dispatched to the workers. Each execution appends ``<pid> <event>
<id>`` to the file named by ``RESONATE_WEB_TEST_EXECLOG`` (one ``write`` in
append mode per line, so processes do not interleave).
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI
from resonate.context import Context
from resonate.retry import Never

from examples.gateway_worker import functions as example
from resonate_web import Functions
from resonate_web.fastapi import ResonateRouter

functions = Functions()


def record(ctx: Context, event: str) -> None:
    path = os.environ.get("RESONATE_WEB_TEST_EXECLOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {event} {ctx.info.id}\n".encode())
        finally:
            os.close(fd)


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


functions.expose(example.countdown)
functions.expose(example.approval)
functions.expose(example.book_trip, retry_policy=Never())

app = FastAPI()
app.include_router(ResonateRouter(functions))
