from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.adapters import ADAPTERS


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(adapter: str) -> Iterator[httpx.Client]:
    """A live app of each adapter (in process), on the embedded backend."""
    with ADAPTERS[adapter]() as c:
        yield c


@pytest.fixture
def uid() -> str:
    return "t-" + uuid.uuid4().hex[:12]
