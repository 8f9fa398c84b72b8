"""The hand-written baseline: a FastAPI route of one's own that dispatches ``add`` with
the raw SDK's ``rpc`` and waits for its result. ``uvicorn bench.apps.rpc_by_hand:app``.

What the HTTP gateway is measured against in ``bench_distributed.py``: the same
work (create the invocation's promise for the ``workers`` group, wait for a
worker to settle it, answer its result as JSON) with none of the gateway's
bookkeeping. Only resonate-sdk and resonate-pg are used, no resonate-web: the
client is built the plain way, ``Resonate(url=...)`` for a Resonate server (an
HTTP connection for requests, an SSE stream for settle notifications), or
``Resonate(network=PostgresConnection(...))`` for a ``postgresql://`` URL, the
resonate-pg connector the gateway uses too. It is started in the app's lifespan
and stopped on shutdown.

    RESONATE_URL=http://127.0.0.1:8001 uvicorn bench.apps.rpc_by_hand:app
    curl -X POST localhost:8000/add/first -H 'content-type: application/json' -d '{"args": [1, 2]}'
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from resonate.resonate import Resonate

#: The group this client listens as (its settle notifications come to it).
GROUP = "by-hand"
#: The group whose workers run ``add``.
TARGET = "workers"


def make_client(url: str) -> Resonate:
    """A Resonate client for ``url``, built but not started."""
    if url.startswith(("postgresql://", "postgres://")):
        from resonate_pg import PostgresConnection

        # One connection is both the network and the source (LISTEN/NOTIFY).
        pid = uuid.uuid4().hex
        network = PostgresConnection(conninfo=url, pid=pid, group=GROUP)
        return Resonate(network=network, pid=pid, group=GROUP, autostart=False)
    return Resonate(url=url, group=GROUP, autostart=False)


client = make_client(os.environ["RESONATE_URL"])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    client.start()
    try:
        yield
    finally:
        await client.stop()


app = FastAPI(title="rpc by hand", lifespan=lifespan)


class Call(BaseModel):
    args: list[int]


@app.post("/add/{id}")
async def add(id: str, call: Call) -> dict[str, Any]:
    a, b = call.args
    handle = client.options(target=TARGET).rpc(id, "add", a, b)
    return {"id": id, "status": "resolved", "result": await handle.result()}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
