"""The FastAPI app the tests serve (in process, and under a real uvicorn)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from resonate_web import Functions
from resonate_web.fastapi import ResonateRouter
from tests.support.functions import build


def create_app(functions: Functions | None = None, **settings: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(ResonateRouter(functions or build(), **settings))
    return app


app = create_app()
