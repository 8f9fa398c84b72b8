"""Flow control with functions quick enough to finish before their start returns
(inline, on the gateway's own backend): each start takes its place in line before
its invocation is created, so none is left behind, holding up its lane, by an
invocation that had already run (embedded backend and Postgres)."""

from __future__ import annotations

import json
import uuid

import pytest
from resonate.context import Context

from resonate_web import Concurrency, Functions, RateLimit, Settings
from resonate_web._core import flow
from resonate_web._core.runtime import Runtime
from resonate_web._gateway.router import Gateway, Request

pytestmark = pytest.mark.timeout(120)

functions = Functions()


async def _body(ctx: Context, n: int) -> int:
    return n


functions.expose(_body, name="limited", mode="inline", concurrency=Concurrency(100, "n"))
functions.expose(_body, name="paced", mode="inline", rate=RateLimit(1_000_000, 1))


@pytest.mark.parametrize("backend", ["embedded", "pg"])
async def test_quick_starts_leave_no_place_in_line_behind(
    backend: str, request: pytest.FixtureRequest
) -> None:
    environ = {"RESONATE_URL": request.getfixturevalue("pg_dsn")} if backend == "pg" else {}
    runtime = Runtime(Settings.load(environ=environ, lease_ttl=30), functions)
    await runtime.start()
    gateway = Gateway(runtime)
    tag = uuid.uuid4().hex[:8]
    try:
        for name in ("limited", "paced"):
            for i in range(40):
                start = Request(
                    "POST",
                    {"name": name},
                    {"id": f"{name}-{tag}-{i}", "wait": "10"},
                    {"content-type": "application/json"},
                    json.dumps({"args": [i]}).encode(),
                    "/resonate",
                )
                response = await gateway.handle("start", start, "/")
                assert response.body.get("result") == i, response.body
            # A replay of a finished one makes no place either.
            again = await gateway.handle("start", start, "/")
            assert again.body.get("result") == 39
            found, counts = await flow.waiting(runtime.client, [name])
            assert found == {}
            assert counts[name] == dict.fromkeys(counts[name], 0), counts
    finally:
        await runtime.stop()
