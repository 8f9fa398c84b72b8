"""FastAPI: ``uvicorn bench.apps.fastapi_app:resonate`` (the ResonateRouter) or
``:by_hand`` (two hand-written routes on the raw SDK)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from bench.apps import by_hand as hand
from examples.gateway_worker.functions import functions
from resonate_web.fastapi import ResonateRouter

resonate = FastAPI()
resonate.include_router(ResonateRouter(functions))

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state["resonate"] = hand.client()
    yield
    await state["resonate"].stop()


by_hand = FastAPI(lifespan=lifespan)


@by_hand.post("/add")
async def add(id: str, body: dict[str, list[int]]) -> dict[str, Any]:
    return await hand.start(state["resonate"], id, body["args"])


@by_hand.get("/invocations/{id}")
async def read(id: str) -> dict[str, Any]:
    return await hand.status(state["resonate"], id)
