"""The floor of the long-poll benchmark: the least a FastAPI app can do to park a
request until something happens, and answer it then.

``GET /wait`` awaits one module-level :class:`asyncio.Event`; ``POST /set`` sets
it, answering every parked request at once. ``GET /health`` tells when it serves.

    uvicorn bench.apps.bare_longpoll:app
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

app = FastAPI()
settled = asyncio.Event()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/wait")
async def wait() -> dict[str, str]:
    await settled.wait()
    return {"status": "resolved"}


@app.post("/set")
async def set_() -> dict[str, str]:
    settled.set()
    return {"status": "set"}
