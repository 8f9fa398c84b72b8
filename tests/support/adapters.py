"""One entry per adapter: a context manager yielding an HTTP client for a live app.

The conformance suite is written once against these clients (an
``httpx.Client`` or anything with the same ``request``/``get``/``post`` shape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx


@contextmanager
def fastapi_client(**settings: Any) -> Iterator[httpx.Client]:
    from fastapi.testclient import TestClient

    from tests.support.fastapi_app import create_app

    with TestClient(create_app(**settings)) as client:
        yield client


Adapter = Callable[..., AbstractContextManager[httpx.Client]]

ADAPTERS: dict[str, Adapter] = {
    "fastapi": fastapi_client,
}
