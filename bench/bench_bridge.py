"""The sync bridge: what sync code (a Flask or Django view) pays to reach the async SDK
through the client facade, against the bare hop onto the same loop by hand.

One Flask app with the ``Resonate`` extension, built as an app factory builds it, on
the embedded backend: its portal (the background loop thread every sync call hops
onto), its runtime and its sync client. One invocation of ``add`` is run to the end;
then, N calls in a row each, on the portal's loop:

- ``bare hop``: ``asyncio.run_coroutine_threadsafe(coro, loop).result()`` by hand —
  the baseline of every row;
- ``facade``: the same through the facade: ``Portal.call`` for the no-op, the
  sync client's ``promises.get`` and ``status`` for the reads;
- ``flask view``: what a view writes, ``resonate.client.promises.get(id)``, inside
  one request context (the extension's ``client`` property finds the app's state
  and checks the server first);
- ``on the loop``: the same coroutines awaited N times on the loop itself, no hop:
  the part of each row that is not the bridge.

The SDK operation is ``resonate.promises.get(id)`` (a read of the settled invocation's
promise); the facade's ``promises.get`` does the read the routes do (raw record,
bounded by the backend timeout, values decoded to JSON) and builds the promise
document, ``status`` builds the invocation's status document. Within a round the rows
take turns, 50 calls each, so drift hits every row alike; each figure is the median
of the rounds.

    .venv/bin/python bench/bench_bridge.py [N] [ROUNDS] [--tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.gateway_worker.functions import functions  # noqa: E402
from resonate_web.flask import Resonate  # noqa: E402

#: (operation, path) -> what it is measured against.
BASELINE = {
    ("no-op", "bare hop"): ("no-op", "bare hop"),
    ("no-op", "facade"): ("no-op", "bare hop"),
    ("promises.get", "bare hop"): ("promises.get", "bare hop"),
    ("promises.get", "facade"): ("promises.get", "bare hop"),
    ("promises.get", "flask view"): ("promises.get", "bare hop"),
    ("status", "facade"): ("promises.get", "bare hop"),
    ("promises.get", "sdk on the loop"): ("promises.get", "sdk on the loop"),
    ("promises.get", "facade on the loop"): ("promises.get", "sdk on the loop"),
    ("status", "facade on the loop"): ("promises.get", "sdk on the loop"),
}


async def noop() -> None:
    return None


#: Calls per row in a row before the next row takes its turn.
CHUNK = 50


def timed(op: Callable[[], Any]) -> Callable[[int], float]:
    """Seconds for ``k`` calls of ``op`` in a row."""

    def measure(k: int) -> float:
        began = time.perf_counter()
        for _ in range(k):
            op()
        return time.perf_counter() - began

    return measure


def on_loop(
    loop: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, Any]]
) -> Callable[[int], float]:
    """Seconds for ``k`` of ``await make()`` in a row, inside one coroutine on ``loop``."""

    async def many(k: int) -> float:
        began = time.perf_counter()
        for _ in range(k):
            await make()
        return time.perf_counter() - began

    return lambda k: asyncio.run_coroutine_threadsafe(many(k), loop).result()


def main(n: int = 2000, rounds: int = 3) -> list[dict[str, object]]:
    """Measure, print the table, and return its rows."""
    app = Flask("bench_bridge")
    resonate = Resonate(app, functions)
    state = resonate.state(app)
    client, portal = state.client, state.portal
    try:
        id = "bridge-" + time.strftime("%H%M%S")
        assert client.run(id, "add", 1, 2).result(timeout=10) == 3
        loop = portal.loop
        sdk = state.runtime.client
        facade = client._promise  # the coroutine SyncPromises.get runs on the loop
        document = client._status  # the coroutine SyncClient.status runs on the loop

        def hop(coro: Coroutine[Any, Any, Any]) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result()

        assert hop(sdk.promises.get(id)).state == "resolved"
        assert client.promises.get(id)["status"] == "resolved"
        assert client.status(id)["result"] == 3
        rows_of: dict[tuple[str, str], Callable[[int], float]] = {
            ("no-op", "bare hop"): timed(lambda: hop(noop())),
            ("no-op", "facade"): timed(lambda: portal.call(noop())),
            ("promises.get", "bare hop"): timed(lambda: hop(sdk.promises.get(id))),
            ("promises.get", "facade"): timed(lambda: client.promises.get(id)),
            ("promises.get", "flask view"): timed(lambda: resonate.client.promises.get(id)),
            ("status", "facade"): timed(lambda: client.status(id)),
            ("promises.get", "sdk on the loop"): on_loop(loop, lambda: sdk.promises.get(id)),
            ("promises.get", "facade on the loop"): on_loop(loop, lambda: facade("get", id, None)),
            ("status", "facade on the loop"): on_loop(loop, lambda: document(id)),
        }
        results: dict[tuple[str, str], list[float]] = {key: [] for key in rows_of}
        # Every row in a view's request context, as a view runs (only "flask view" reads it).
        with app.test_request_context(f"/orders/{id}"):
            for measure in rows_of.values():  # warm up every path
                measure(CHUNK)
            for _ in range(rounds):
                spent = dict.fromkeys(rows_of, 0.0)
                done = 0
                while done < n:  # rows take turns, so drift hits every row alike
                    k = min(CHUNK, n - done)
                    for key, measure in rows_of.items():
                        spent[key] += measure(k)
                    done += k
                for key, seconds in spent.items():
                    results[key].append(seconds / n * 1e6)
    finally:
        resonate.shutdown(app)
    medians = {key: statistics.median(found) for key, found in results.items()}
    print(f"N={n} calls in a row per row, median of {rounds} rounds, embedded backend\n")
    print("| operation | path | µs/op | ratio | against |")
    print("|---|---|---:|---:|---|")
    rows: list[dict[str, object]] = []
    for (operation, path), us in medians.items():
        base = BASELINE[(operation, path)]
        ratio = us / medians[base]
        print(f"| {operation} | {path} | {us:.1f} | {ratio:.2f}x | {base[0]}, {base[1]} |")
        rows.append(
            {
                "operation": operation,
                "path": path,
                "us_per_op": round(us, 2),
                "ratio": round(ratio, 3),
                "against": f"{base[0]}, {base[1]}",
            }
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=2000, help="calls per row")
    parser.add_argument("rounds", nargs="?", type=int, default=3, help="rounds")
    parser.add_argument("--tiny", action="store_true", help="50 calls, one round: a smoke run")
    args = parser.parse_args()
    if args.tiny:
        main(50, 1)
    else:
        main(args.n, args.rounds)
