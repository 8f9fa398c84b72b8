"""Long-poll scale: W requests parked on one invocation, against a bare FastAPI floor.

Each app is a real uvicorn process pinned to CPU 0 (``taskset -c 0`` when there are
two CPUs or more); this process is the load generator, pinned to CPU 1. Every
request is its own connection (raw asyncio streams: the cheapest client there is).

- ``bare``: the floor, ``bench/apps/bare_longpoll.py``: ``GET /wait`` awaits one
  module-level ``asyncio.Event``, ``POST /set`` sets it;
- ``resonate``: the example FastAPI gateway (``examples/gateway_worker``) on the
  embedded backend. One invocation of ``approval`` waits on a human-in-the-loop
  promise (its status document's ``awaiting``); W requests long-poll
  ``GET /resonate/invocations/{id}?wait=60``; ``POST /resonate/promises/{awaited}/resolve``
  settles them all.

Per round and app, on a fresh server: its RSS (``VmRSS``) before the waiters and once
all W are parked (it holds W more connections, and its CPU time and RSS stop
rising), hence KiB per waiter; the server's CPU time (``utime + stime``) over a
window while they are parked; the time from sending the settle to the last of the W
answers arriving, every one of them checked to be 200 with status ``resolved``, and
the server's CPU time over it.
Rounds alternate the apps; each figure is the median over the rounds. Both servers
run without uvicorn's access log (the same per-request cost for both, and a
deployment's choice).

    .venv/bin/python bench/bench_longpoll.py [W] [ROUNDS] [--window S] [--tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import procs  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: How long the server's CPU time and RSS must hold still for the waiters to count as parked.
SETTLE_WINDOW = 0.3


@dataclass(frozen=True)
class App:
    name: str
    module: str
    cwd: Path
    health: str
    env: dict[str, str]


def apps(waiters: int) -> dict[str, App]:
    return {
        "bare": App("bare", "bench.apps.bare_longpoll:app", ROOT, "/health", {}),
        "resonate": App(
            "resonate",
            "gateway_fastapi:app",
            ROOT / "examples" / "gateway_worker",
            "/resonate/health",
            # No RESONATE_URL: the embedded backend. Room for every waiter, and a cap
            # above the ?wait=60 the waiters ask for.
            {"RESONATE_MAX_WAITERS": str(waiters + 100), "RESONATE_WAIT_CAP": "120"},
        ),
    }


# ── this process and the server's ─────────────────────────────────────────


def two_cpus() -> bool:
    return len(os.sched_getaffinity(0)) >= 2


def pinned(argv: list[str]) -> list[str]:
    """``argv`` run on CPU 0 (``taskset`` execs it: the process keeps its pid)."""
    if two_cpus() and shutil.which("taskset"):
        return ["taskset", "-c", "0", *argv]
    return argv


@contextmanager
def load_generator(waiters: int) -> Iterator[None]:
    """This process on CPU 1, its open-file limit raised to the hard limit (the servers
    it starts inherit it) so that ``waiters`` sockets fit; both restored after."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = limits
    if soft != resource.RLIM_INFINITY and soft != hard:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < waiters + 256:
        raise RuntimeError(f"{waiters} connections need an open-file limit above {soft}")
    affinity = os.sched_getaffinity(0)
    if two_cpus():
        os.sched_setaffinity(0, {sorted(affinity)[1]})
    try:
        yield
    finally:
        os.sched_setaffinity(0, affinity)
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def cpu_over(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return cpu_seconds(pid) - before


# ── a minimal HTTP/1.1 client: one request per connection ─────────────────


async def request(
    port: int, method: str, path: str, body: Any = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, send one request (``Connection: close``); the open streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    await writer.drain()
    return reader, writer


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, Any]:
    """Read the response: its status and JSON body; closes the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        length = {k.strip().lower(): v.strip() for k, v in headers.items()}["content-length"]
        body = await reader.readexactly(int(length))
    finally:
        writer.close()
    return status, json.loads(body) if body else None


async def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await answer(*await request(port, method, path, body))


# ── one round ─────────────────────────────────────────────────────────────


async def prepare(app: App, port: int) -> tuple[str, str, Any]:
    """What the waiters poll, what settles them, and its body; warms the routes up."""
    if app.name == "bare":
        for _ in range(20):
            assert (await call(port, "GET", "/health"))[0] == 200
        return "/wait", "/set", None
    id = "longpoll-" + uuid.uuid4().hex[:12]
    status, doc = await call(
        port, "POST", f"/resonate/functions/approval?id={id}", {"args": ["bench"]}
    )
    assert status == 202, (status, doc)
    deadline = time.monotonic() + 30
    while True:
        status, doc = await call(port, "GET", f"/resonate/invocations/{id}")
        assert status == 200, (status, doc)
        if doc.get("awaiting"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{id} awaits nothing after 30s: {doc}")
        await asyncio.sleep(0.02)
    awaited = doc["awaiting"][0]
    for _ in range(20):
        assert (await call(port, "GET", f"/resonate/invocations/{id}"))[0] == 200
    poll = f"/resonate/invocations/{id}?wait=60"
    return poll, f"/resonate/promises/{awaited}/resolve", {"value": "approved"}


async def wait_parked(pid: int, files: int = 0, within: float = 60) -> None:
    """Wait until the server holds ``files`` open files (one per accepted connection)
    and its CPU time and RSS hold still for two windows in a row: every request is
    parked."""
    deadline = time.monotonic() + within
    rss = rss_kib(pid)
    quiet = 0
    while True:
        used = await cpu_over(pid, SETTLE_WINDOW)
        now = rss_kib(pid)
        still = used <= 2 / CLOCK_TICKS and abs(now - rss) <= 64
        quiet = quiet + 1 if still and open_files(pid) >= files else 0
        if quiet >= 2:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server was still busy after {within}s")
        rss = now


async def measure_round(
    app: App, pid: int, port: int, waiters: int, window: float
) -> dict[str, float]:
    poll, settle, settle_body = await prepare(app, port)
    await wait_parked(pid)
    rss_before = rss_kib(pid)
    files = open_files(pid)

    opened = await asyncio.gather(*(request(port, "GET", poll) for _ in range(waiters)))
    arrived: list[float] = []

    async def one(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> tuple[int, Any]:
        found = await answer(*streams)
        arrived.append(time.perf_counter())
        return found

    answers = [asyncio.create_task(one(streams)) for streams in opened]
    await wait_parked(pid, files + waiters)
    early = [t.result() for t in answers if t.done()]
    if early:
        raise RuntimeError(f"{len(early)} long-polls answered before the settle: {early[:3]}")
    rss_parked = rss_kib(pid)
    parked_cpu = await cpu_over(pid, window)

    cpu_before = cpu_seconds(pid)
    began = time.perf_counter()
    settled = asyncio.create_task(call(port, "POST", settle, settle_body))
    results = await asyncio.gather(*answers)
    last = max(arrived) - began
    settle_cpu = cpu_seconds(pid) - cpu_before
    status, doc = await settled
    assert status == 200, (status, doc)
    wrong = [(s, d) for s, d in results if s != 200 or d.get("status") != "resolved"]
    if wrong:
        raise RuntimeError(f"{len(wrong)} of {waiters} answers are not 200 resolved: {wrong[:3]}")
    return {
        "rss_before_kib": rss_before,
        "rss_parked_kib": rss_parked,
        "kib_per_waiter": (rss_parked - rss_before) / waiters,
        "cpu_seconds_while_parked": parked_cpu,
        "settle_to_last_answer_ms": last * 1000,
        "cpu_seconds_answering": settle_cpu,
    }


def run_round(app: App, waiters: int, window: float) -> dict[str, float]:
    """A fresh server for ``app``, measured once."""
    port = procs.free_port()
    argv = pinned(
        [
            str(procs.BIN / "uvicorn"),
            app.module,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    )
    ready = f"http://127.0.0.1:{port}{app.health}"
    with procs.process(argv, env=app.env, cwd=app.cwd, ready_url=ready) as proc:
        return asyncio.run(measure_round(app, proc.pid, port, waiters, window))


# ── the table ─────────────────────────────────────────────────────────────

FIELDS = (
    "rss_before_kib",
    "rss_parked_kib",
    "kib_per_waiter",
    "cpu_seconds_while_parked",
    "settle_to_last_answer_ms",
    "cpu_seconds_answering",
)


def ratio(m: dict[str, float], floor: dict[str, float], field: str) -> float | None:
    """``m[field]`` against the floor's; ``None`` when the floor measured zero (a tiny run)."""
    return round(m[field] / floor[field], 3) if floor[field] > 0 else None


def shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def main(waiters: int = 1000, rounds: int = 3, window: float = 2.0) -> list[dict[str, object]]:
    """Measure, print the table, and return its rows."""
    chosen = apps(waiters)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    with load_generator(waiters):
        for _ in range(rounds):  # interleaved, so drift hits both alike
            for name, app in chosen.items():
                runs[name].append(run_round(app, waiters, window))
    medians = {
        name: {f: statistics.median(run[f] for run in found) for f in FIELDS}
        for name, found in runs.items()
    }
    floor = medians["bare"]
    print(
        f"W={waiters} parked long-polls, one connection each, median of {rounds} rounds, "
        f"servers pinned to CPU {'0' if two_cpus() else '0 with the client (one CPU)'}\n"
    )
    print(
        "| app | RSS before, KiB | RSS parked, KiB | KiB/waiter | ratio "
        f"| CPU parked {window:g} s, s | settle → last answer, ms | ratio "
        "| CPU answering, s | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows: list[dict[str, object]] = []
    for name, m in medians.items():
        memory = ratio(m, floor, "kib_per_waiter")
        latency = ratio(m, floor, "settle_to_last_answer_ms")
        answering = ratio(m, floor, "cpu_seconds_answering")
        print(
            f"| {name} | {m['rss_before_kib']:.0f} | {m['rss_parked_kib']:.0f} "
            f"| {m['kib_per_waiter']:.1f} | {shown(memory)} | {m['cpu_seconds_while_parked']:.2f} "
            f"| {m['settle_to_last_answer_ms']:.0f} | {shown(latency)} "
            f"| {m['cpu_seconds_answering']:.2f} | {shown(answering)} |"
        )
        rows.append(
            {
                "app": name,
                "waiters": waiters,
                "rss_before_kib": round(m["rss_before_kib"]),
                "rss_parked_kib": round(m["rss_parked_kib"]),
                "kib_per_waiter": round(m["kib_per_waiter"], 2),
                "kib_per_waiter_ratio": memory,
                "cpu_seconds_while_parked": round(m["cpu_seconds_while_parked"], 3),
                "cpu_window_s": window,
                "settle_to_last_answer_ms": round(m["settle_to_last_answer_ms"], 1),
                "settle_ratio": latency,
                "cpu_seconds_answering": round(m["cpu_seconds_answering"], 3),
                "answering_ratio": answering,
                "against": "bare",
            }
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("waiters", nargs="?", type=int, default=1000, help="parked long-polls")
    parser.add_argument("rounds", nargs="?", type=int, default=3, help="rounds per app")
    parser.add_argument("--window", type=float, default=2.0, help="seconds of CPU measured")
    parser.add_argument("--tiny", action="store_true", help="20 waiters, one round: a smoke run")
    args = parser.parse_args()
    if args.tiny:
        main(20, 1, 0.2)
    else:
        main(args.waiters, args.rounds, args.window)
