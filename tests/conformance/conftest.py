"""The conformance suite's fixtures: every case runs against every adapter."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.adapters import ADAPTERS, PG_ADAPTERS


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(adapter: str, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A live app of each adapter (in process or a real server), on the embedded backend
    (or, for a ``-pg`` adapter, on this module's Postgres database)."""
    settings = {"url": request.getfixturevalue("pg_dsn")} if adapter in PG_ADAPTERS else {}
    with ADAPTERS[adapter](**settings) as c:
        yield c
