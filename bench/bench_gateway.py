"""How much the gateway adds over the raw SDK, measured as ratios in one run.

Each scenario starts N invocations of ``add`` and waits for each result, on a
fresh embedded backend, one after another (latency) and N at once (throughput):

- ``sdk``: by hand with the raw SDK (``resonate.run`` + ``handle.result()``) —
  the baseline;
- ``core``: through :class:`resonate_web.Gateway` (what every adapter calls:
  validation, id checks, replay check, long-poll, status document);
- ``fastapi-by-hand``: the same HTTP work by hand, a minimal FastAPI endpoint
  calling the raw SDK (the baseline for the HTTP rows);
- ``fastapi``: the ResonateRouter's routes (in-process ASGI, httpx client).

Status reads compare ``resonate.promises.get`` with ``GET /invocations/{id}``.

    .venv/bin/python bench/bench_gateway.py [N]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.gateway_worker.functions import functions
from resonate_web import Settings
from resonate_web._core.runtime import Runtime
from resonate_web._gateway.router import Gateway, Request
from resonate_web.fastapi import ResonateRouter

BODY = json.dumps({"args": [1, 2]}).encode()
HEADERS = {"content-type": "application/json"}


async def timed(n: int, concurrent: bool, op: Callable[[int], Awaitable[None]]) -> float:
    began = time.perf_counter()
    if concurrent:
        await asyncio.gather(*(op(i) for i in range(n)))
    else:
        for i in range(n):
            await op(i)
    return (time.perf_counter() - began) / n * 1e6


async def sdk(n: int, concurrent: bool, tag: str) -> tuple[float, float]:
    runtime = Runtime(Settings.load(environ={}), functions)
    client = await runtime.start()

    async def start(i: int) -> None:
        handle = client.run(f"{tag}-{i}", "add", 1, 2)
        assert await handle.result() == 3

    async def read(i: int) -> None:
        record = await client.promises.get(f"{tag}-{i}")
        assert record.state == "resolved"

    try:
        return await timed(n, concurrent, start), await timed(n, concurrent, read)
    finally:
        await runtime.stop()


async def core(n: int, concurrent: bool, tag: str) -> tuple[float, float]:
    runtime = Runtime(Settings.load(environ={}), functions)
    await runtime.start()
    gateway = Gateway(runtime)

    async def start(i: int) -> None:
        request = Request(
            "POST",
            {"name": "add"},
            {"id": f"{tag}-{i}", "wait": "10"},
            HEADERS,
            BODY,
            "/resonate",
        )
        response = await gateway.handle("start", request, "/")
        assert response.body["result"] == 3, response.body

    async def read(i: int) -> None:
        request = Request("GET", {"id": f"{tag}-{i}"}, {}, {}, b"", "/resonate")
        response = await gateway.handle("status", request, "/")
        assert response.body["status"] == "resolved"

    try:
        return await timed(n, concurrent, start), await timed(n, concurrent, read)
    finally:
        await runtime.stop()


async def fastapi(n: int, concurrent: bool, tag: str) -> tuple[float, float]:
    router = ResonateRouter(functions, settings=Settings.load(environ={}))
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with (
        router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as http,
    ):

        async def start(i: int) -> None:
            response = await http.post(
                "/resonate/functions/add",
                params={"id": f"{tag}-{i}", "wait": "10"},
                content=BODY,
                headers=HEADERS,
            )
            assert response.json()["result"] == 3

        async def read(i: int) -> None:
            response = await http.get(f"/resonate/invocations/{tag}-{i}")
            assert response.json()["status"] == "resolved"

        return await timed(n, concurrent, start), await timed(n, concurrent, read)


async def fastapi_by_hand(n: int, concurrent: bool, tag: str) -> tuple[float, float]:
    runtime = Runtime(Settings.load(environ={}), functions)
    app = FastAPI()

    @app.post("/add/{id}")
    async def add(id: str, body: dict[str, list[int]]) -> dict[str, object]:
        handle = runtime.client.run(id, "add", *body["args"])
        return {"id": id, "status": "resolved", "result": await handle.result()}

    @app.get("/invocations/{id}")
    async def read_one(id: str) -> dict[str, object]:
        record = await runtime.client.promises.get(id)
        return {"id": id, "status": record.state, "result": record.value.data}

    await runtime.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

        async def start(i: int) -> None:
            response = await http.post(f"/add/{tag}-{i}", content=BODY, headers=HEADERS)
            assert response.json()["result"] == 3

        async def read(i: int) -> None:
            response = await http.get(f"/invocations/{tag}-{i}")
            assert response.json()["status"] == "resolved"

        try:
            return await timed(n, concurrent, start), await timed(n, concurrent, read)
        finally:
            await runtime.stop()


async def main(n: int, rounds: int = 3) -> list[dict[str, object]]:
    """Measure, print the table, and return its rows."""
    scenarios = {
        "sdk": sdk,
        "core": core,
        "fastapi-by-hand": fastapi_by_hand,
        "fastapi": fastapi,
    }
    baselines = {
        "sdk": "sdk",
        "core": "sdk",
        "fastapi-by-hand": "sdk",
        "fastapi": "fastapi-by-hand",
    }
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for r in range(rounds):  # interleaved, so drift hits every scenario alike
        for concurrent in (False, True):
            for name, fn in scenarios.items():
                tag = f"{name}-{int(concurrent)}-{r}"
                results.setdefault((name, concurrent), []).append(await fn(n, concurrent, tag))
    print(f"N={n} invocations per scenario, median of {rounds} rounds, embedded backend\n")
    print("| mode | path | start+result µs/op | ratio | status read µs/op | ratio | against |")
    print("|---|---|---:|---:|---:|---:|---|")
    rows: list[dict[str, object]] = []
    for concurrent in (False, True):
        for name in scenarios:
            base = results[(baselines[name], concurrent)]
            base_start = statistics.median(s for s, _ in base)
            base_read = statistics.median(r for _, r in base)
            runs = results[(name, concurrent)]
            s = statistics.median(x for x, _ in runs)
            rd = statistics.median(y for _, y in runs)
            mode = "concurrent" if concurrent else "sequential"
            print(
                f"| {mode} | {name} | {s:.0f} | {s / base_start:.2f}x | {rd:.0f} | "
                f"{rd / base_read:.2f}x | {baselines[name]} |"
            )
            rows.append(
                {
                    "mode": mode,
                    "path": name,
                    "start_result_us": round(s, 1),
                    "start_result_ratio": round(s / base_start, 3),
                    "status_read_us": round(rd, 1),
                    "status_read_ratio": round(rd / base_read, 3),
                    "against": baselines[name],
                }
            )
    return rows


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
