"""``make bench``: every benchmark, each figure a ratio against a baseline measured in
the same run, printed as tables and written as JSON under ``bench/results/``.

    .venv/bin/python bench/run.py              # the sizes the README reports
    .venv/bin/python bench/run.py --tiny       # a smoke run of the runner itself

- ``adapters``: each framework's routes against hand-written routes in that framework
  on the raw SDK, real servers under wrk; and ``over_time``, the embedded backend
  under load for a minute (``bench_adapters.py``);
- ``gateway``: the core and the FastAPI routes against the raw SDK and a hand-written
  FastAPI endpoint, in process, on the embedded backend (``bench_gateway.py``);
- ``longpoll``: 1,000 long-polls parked on one pending invocation against a bare
  endpoint awaiting an event: memory per waiter, CPU while parked, time from the
  settle to the last answer (``bench_longpoll.py``);
- ``bridge``: the sync client's hop onto the runtime's loop against a bare
  ``run_coroutine_threadsafe`` (``bench_bridge.py``);
- ``distributed``: the HTTP gateway against a hand-written FastAPI route calling the
  raw SDK's ``rpc`` (the raw ``rpc`` in process beside), across processes, on the dev
  server and on Postgres (``bench_distributed.py``);
- ``flow``: what each flow-control option costs per start against the same function
  without it, on the embedded backend and on Postgres (``bench_flow.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_adapters  # noqa: E402
import bench_bridge  # noqa: E402
import bench_distributed  # noqa: E402
import bench_flow  # noqa: E402
import bench_gateway  # noqa: E402
import bench_longpoll  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(tiny: bool, backends: list[str], out: Path) -> dict[str, object]:
    started = time.time()
    if tiny:
        adapters = bench_adapters.main(seconds=1, rounds=1, windows=2, window_seconds=1)
        gateway = asyncio.run(bench_gateway.main(5, rounds=1))
        longpoll = bench_longpoll.main(20, 1, 0.2)
        bridge = bench_bridge.main(50, 1)
        distributed = bench_distributed.main(10, 5, 1, backends)
        flow = bench_flow.main(5, 1, postgres_too="pg" in backends)
    else:
        adapters = bench_adapters.main(seconds=3, rounds=5, windows=6, window_seconds=10)
        gateway = asyncio.run(bench_gateway.main(200, rounds=3))
        longpoll = bench_longpoll.main(1000, 3, 2.0)
        bridge = bench_bridge.main(2000, 3)
        distributed = bench_distributed.main(500, 50, 3, backends)
        flow = bench_flow.main(200, 3, postgres_too="pg" in backends)
    report: dict[str, object] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": {
            "python": platform.python_version(),
            "system": platform.platform(),
            "cpus": os.cpu_count(),
            "cpu": _cpu_model(),
        },
        "tiny": tiny,
        **adapters,
        "gateway": gateway,
        "longpoll": longpoll,
        "bridge": bridge,
        "distributed": distributed,
        "flow": flow,
    }
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    text = json.dumps(report, indent=2)
    (out / f"{stamp}.json").write_text(text)
    (out / "latest.json").write_text(text)
    print(f"\nwritten: {out / 'latest.json'}")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="smallest sizes: a smoke run")
    parser.add_argument("--backend", choices=["dev", "pg", "both"], default="both")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    chosen = ["dev", "pg"] if args.backend == "both" else [args.backend]
    run(args.tiny, chosen, args.out)
