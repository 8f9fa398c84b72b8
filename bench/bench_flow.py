"""What each flow-control option costs per start, as a ratio to the same function
without it, measured in one run.

Through the gateway's core (what every adapter calls), each start waits for its
result (``?wait=``), one after another, on a fresh runtime per backend: the
embedded backend, and Postgres (a private cluster with resonate-pg's schema;
the functions run inline in the same process, so the figures are the flow
state's round trips and nothing else). Every variant's limit is far from
reached, so nothing waits: what is measured is the bookkeeping.

- ``plain``: no flow control (the baseline);
- ``priority``: the same function, each start carrying a priority;
- ``concurrency``: ``Concurrency(10_000, key="n")``: a slot taken and given back;
- ``rate``: ``RateLimit(1_000_000, 1)``: a place in the window;
- ``rate (reject)``: the same refused at the start when full (``on_limit="reject"``);
- ``debounce``: ``Debounce(0.001, key="n")``: a quiet period of 1 ms per start.

Variants alternate within each round; the figure is the median of the rounds.

    PYTHONPATH=src:. .venv/bin/python bench/bench_flow.py [N] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resonate.context import Context

from resonate_web import Concurrency, Debounce, Functions, RateLimit, Settings
from resonate_web._core.runtime import Runtime
from resonate_web._gateway.router import Gateway, Request

functions = Functions()


async def _body(ctx: Context, n: int) -> int:
    return n


functions.expose(_body, name="plain", mode="inline")
functions.expose(_body, name="concurrency", mode="inline", concurrency=Concurrency(10_000, "n"))
functions.expose(_body, name="rate", mode="inline", rate=RateLimit(1_000_000, 1))
functions.expose(
    _body, name="reject", mode="inline", rate=RateLimit(1_000_000, 1, on_limit="reject")
)
functions.expose(_body, name="debounce", mode="inline", debounce=Debounce(0.001, key="n"))

#: (row label, function, extra body members)
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("plain", "plain", {}),
    ("priority", "plain", {"priority": 5}),
    ("concurrency", "concurrency", {}),
    ("rate", "rate", {}),
    ("rate (reject)", "reject", {}),
    ("debounce", "debounce", {}),
]
HEADERS = {"content-type": "application/json"}


async def _per_start(gateway: Gateway, fn: str, extra: dict[str, Any], n: int) -> float:
    tag = uuid.uuid4().hex[:8]
    began = time.perf_counter()
    for i in range(n):
        body = json.dumps({"args": [i], **extra}).encode()
        request = Request(
            "POST", {"name": fn}, {"id": f"{tag}-{i}", "wait": "10"}, HEADERS, body, "/resonate"
        )
        response = await gateway.handle("start", request, "/")
        assert response.body.get("result") == i, response.body
    return (time.perf_counter() - began) / n * 1e6


async def measure(url: str | None, n: int, rounds: int) -> dict[str, dict[str, float]]:
    environ = {"RESONATE_URL": url} if url else {}
    runtime = Runtime(Settings.load(environ=environ, lease_ttl=30), functions)
    await runtime.start()
    gateway = Gateway(runtime)
    samples: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
    try:
        for _label, fn, extra in VARIANTS:  # warm-up: the flow table is created
            await _per_start(gateway, fn, extra, 5)
        for _ in range(rounds):
            for label, fn, extra in VARIANTS:
                samples[label].append(await _per_start(gateway, fn, extra, n))
    finally:
        await runtime.stop()
    base = statistics.median(samples["plain"])
    return {
        label: {
            "us_per_start": round(statistics.median(times), 1),
            "ratio": round(statistics.median(times) / base, 2),
        }
        for label, times in samples.items()
    }


def main(n: int = 200, rounds: int = 3, postgres_too: bool = True) -> dict[str, Any]:
    report: dict[str, Any] = {"n": n, "rounds": rounds}
    report["embedded"] = asyncio.run(measure(None, n, rounds))
    if postgres_too:
        from tests.support import postgres

        with postgres.cluster() as cluster:
            dsn = cluster.database("flowbench")
            report["postgres"] = asyncio.run(measure(dsn, n, rounds))
    print("\nflow control: cost per start (start + result), ratio to the same function without")
    print(f"{'':<16}" + "".join(f"{b:>22}" for b in ("embedded", "postgres") if b in report))
    for label, _, _ in VARIANTS:
        cells = [
            f"{report[b][label]['us_per_start']:>10.0f} µs {report[b][label]['ratio']:>6.2f}x"
            for b in ("embedded", "postgres")
            if b in report
        ]
        print(f"{label:<16}" + "".join(f"{c:>22}" for c in cells))
    return report


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(main(*args), indent=2))
