"""The FastAPI app the tests serve (in process, and under a real uvicorn)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from resonate_web.fastapi import ResonateRouter
from tests.support.functions import build


def create_app(**settings: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(ResonateRouter(build(), **settings))
    return app


app = create_app()
