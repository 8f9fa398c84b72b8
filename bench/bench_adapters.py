"""What each framework adapter costs next to the same routes written by hand.

For every framework, two apps doing the same work on the embedded backend:

- ``by-hand``: hand-written routes on the raw SDK — ``POST /add?id=`` does
  ``run(id, "add", *args)`` and awaits the result; ``GET /invocations/{id}`` does
  ``promises.get(id)`` (``bench/apps/``) — the baseline;
- ``resonate``: resonate_web's routes — ``POST /resonate/functions/add?id=&wait=5``
  and ``GET /resonate/invocations/{id}``.

Each is served by a real server process of its own — FastAPI on uvicorn, Flask
on gunicorn (gthread), Django on gunicorn (gthread, WSGI) and on uvicorn (ASGI) —
one worker process pinned to CPU 0, loaded by wrk (1 thread, 16 connections)
pinned to CPU 1. Per round and app, a fresh server: one second of warm-up, then
start + result with a fresh id per request, then status reads of one settled id.
Rounds alternate the apps; the figure is the median of the rounds, and the ratio
is the adapter's throughput over the hand-written one (≥ 0.9 is the target).

``over_time`` keeps one FastAPI server under start + result load for six 10-s
windows and reads its memory after each: the embedded backend forgets settled
invocations (``RESONATE_EMBEDDED_RETENTION``/``_KEEP``), so the sixth window
should be as fast as the first, and memory flat. The raw SDK, which forgets
nothing, is measured beside it.

    .venv/bin/python bench/bench_adapters.py [--seconds 4] [--rounds 3] [--tiny] [--only flask]

wrk comes from Debian's package (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import procs  # noqa: E402

CONNECTIONS = 16
#: The apps the over-time run loads, in order.
NAMES = ("resonate", "by-hand")
BODY = '{"args":[1,2]}'

# Every answer is checked: a wrong one counts as bad, and the first is printed.
CHECKED_LUA = """
local threads = {}
bad = 0
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, EXPECTED) then
    bad = bad + 1
    if first == nil then first = status .. " " .. body end
  end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("bad") end
  io.write("bad " .. n .. "\\n")
  for _, t in ipairs(threads) do
    if t:get("first") then io.write("first " .. t:get("first") .. "\\n") end
  end
end
"""

# A fresh id per request, and the result in every answer.
START_LUA = CHECKED_LUA.replace("EXPECTED", """'"result":%s*3'""") + (
    """
local counter = 0
local prefix = os.getenv("BENCH_PREFIX")
local path = os.getenv("BENCH_PATH")
local suffix = os.getenv("BENCH_SUFFIX")
wrk.method = "POST"
wrk.body = 'BODY'
wrk.headers["Content-Type"] = "application/json"
function request()
  counter = counter + 1
  return wrk.format(nil, path .. "?id=" .. prefix .. counter .. suffix)
end
""".replace("BODY", BODY)
)

# The same settled invocation, resolved in every answer.
READ_LUA = CHECKED_LUA.replace("EXPECTED", """'"resolved"', 1, true""")


@dataclass(frozen=True)
class App:
    """One server: how to start it and where its two routes are."""

    argv: list[str]
    env: dict[str, str]
    start: str  # path of start + result (``?id=`` follows)
    suffix: str  # what follows the id in the query
    status: str  # path prefix of a status read (the id follows)


def _gunicorn(target: str) -> list[str]:
    # One process, as the embedded backend requires; threads for the blocking waits.
    return [str(procs.BIN / "gunicorn"), "-k", "gthread", "-w", "1", "--threads", "16", target]


def _uvicorn(target: str) -> list[str]:
    return [str(procs.BIN / "uvicorn"), target, "--no-access-log", "--log-level", "warning"]


RESONATE = {
    "start": "/resonate/functions/add",
    "suffix": "&wait=5",
    "status": "/resonate/invocations/",
}
BY_HAND = {"start": "/add", "suffix": "", "status": "/invocations/"}
DJANGO = {"DJANGO_SETTINGS_MODULE": "bench.apps.django_app"}

FRAMEWORKS: dict[str, dict[str, App]] = {
    "FastAPI on uvicorn": {
        "by-hand": App(_uvicorn("bench.apps.fastapi_app:by_hand"), {}, **BY_HAND),
        "resonate": App(_uvicorn("bench.apps.fastapi_app:resonate"), {}, **RESONATE),
    },
    "Flask on gunicorn (gthread)": {
        "by-hand": App(_gunicorn("bench.apps.flask_app:by_hand"), {}, **BY_HAND),
        "resonate": App(_gunicorn("bench.apps.flask_app:resonate"), {}, **RESONATE),
    },
    "Django on gunicorn (gthread)": {
        "by-hand": App(
            _gunicorn("bench.apps.django_app:wsgi"), {**DJANGO, "BENCH_APP": "by_hand"}, **BY_HAND
        ),
        "resonate": App(
            _gunicorn("bench.apps.django_app:wsgi"), {**DJANGO, "BENCH_APP": "resonate"}, **RESONATE
        ),
    },
    "Django on uvicorn": {
        "by-hand": App(
            _uvicorn("bench.apps.django_app:asgi"),
            {**DJANGO, "BENCH_APP": "by_hand_async"},
            **BY_HAND,
        ),
        "resonate": App(
            _uvicorn("bench.apps.django_app:asgi"), {**DJANGO, "BENCH_APP": "resonate"}, **RESONATE
        ),
    },
}


def _pinned(cpu: int) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is needed: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
    return found


@contextmanager
def serving(app: App) -> Iterator[tuple[str, int]]:
    """``app`` on a free port, pinned to CPU 0; yields its base URL and PID."""
    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    bind = ["--bind", f"127.0.0.1:{port}"] if "gunicorn" in app.argv[0] else ["--port", str(port)]
    argv = [*_pinned(0), *app.argv, *bind]
    with procs.process(argv, env=app.env) as proc:
        procs.wait_answer(base + app.status + "ready", proc)
        yield base, _server_pid(proc.pid)


def _server_pid(pid: int) -> int:
    """The process that serves: gunicorn's one worker, else the process itself."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        kids = children.read_text().split() if children.exists() else []
        if "gunicorn" not in Path(f"/proc/{pid}/cmdline").read_text():
            return pid
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    return pid


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Load:
    """One wrk run against one server: its throughput, and the server's CPU per request."""

    per_second: float
    cpu_us: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loaded(pid: int, run: Callable[[], tuple[float, int]]) -> Load:
    """``run`` (a wrk run: rate, requests) with the server's CPU time read around it."""
    before = cpu_seconds(pid)
    rate, requests = run()
    return Load(rate, (cpu_seconds(pid) - before) / max(requests, 1) * 1e6)


def wrk(
    url: str, script: Path, seconds: float, env: dict[str, str] | None = None
) -> tuple[float, int]:
    """Requests per second and requests of one wrk run; every answer must have been right."""
    argv = [
        *_pinned(1),
        wrk_path(),
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{max(seconds, 1):g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    bad = re.search(r"^bad (\d+)", out, re.MULTILINE)
    errors = re.search(r"Socket errors: .*|Non-2xx or 3xx responses: \d+", out)
    if rate is None or bad is None or count is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    if int(bad.group(1)) or errors:
        raise RuntimeError(f"{bad.group(1)} wrong answers from {url}:\n{out}")
    return float(rate.group(1)), int(count.group(1))


def start_load(base: str, app: App, script: Path, seconds: float) -> tuple[float, int]:
    env = {"BENCH_PREFIX": uuid.uuid4().hex[:10] + "-", "BENCH_PATH": app.start}
    env["BENCH_SUFFIX"] = app.suffix
    return wrk(base + app.start, script, seconds, env)


def measure(app: App, scripts: dict[str, Path], seconds: float) -> tuple[Load, Load]:
    """A fresh server: start + result, then status reads of one settled invocation."""
    with serving(app) as (base, pid):
        start_load(base, app, scripts["start"], 1)  # warm-up
        started = loaded(pid, lambda: start_load(base, app, scripts["start"], seconds))
        id = "settled-" + uuid.uuid4().hex[:8]
        answer = httpx.post(
            f"{base}{app.start}?id={id}{app.suffix}",
            content=BODY,
            timeout=10,
            headers={"content-type": "application/json"},
        )
        assert answer.json()["result"] == 3, answer.text
        reads = loaded(pid, lambda: wrk(base + app.status + id, scripts["read"], seconds))
        return started, reads


def adapters(
    seconds: float, rounds: int, scripts: dict[str, Path], only: str = ""
) -> list[dict[str, object]]:
    figures: dict[tuple[str, str], list[tuple[Load, Load]]] = {}
    chosen = [f for f in FRAMEWORKS if only.lower() in f.lower()]
    for framework in chosen:
        apps = FRAMEWORKS[framework]
        for r in range(rounds):
            order = list(apps.items()) if r % 2 == 0 else list(reversed(apps.items()))
            for name, app in order:
                figures.setdefault((framework, name), []).append(measure(app, scripts, seconds))
    print(
        f"\nAdapter overhead: requests/s, median of {rounds} rounds of {seconds:g} s, "
        f"wrk -t1 -c{CONNECTIONS}, one server process pinned to one core; and the "
        "server's CPU time per request (µs). Ratios: by hand over resonate_web for CPU, "
        "resonate_web over by hand for requests/s (1.00x: no cost)\n"
    )
    print(
        "| framework | route | by hand, req/s | resonate_web | ratio | "
        "by hand, CPU µs/req | resonate_web | ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows: list[dict[str, object]] = []
    for framework in chosen:
        row: dict[str, object] = {"framework": framework}
        for i, route in enumerate(("start_result", "status")):
            hand = [pair[i] for pair in figures[(framework, "by-hand")]]
            ours = [pair[i] for pair in figures[(framework, "resonate")]]
            hr = statistics.median(x.per_second for x in hand)
            orr = statistics.median(x.per_second for x in ours)
            hc = statistics.median(x.cpu_us for x in hand)
            oc = statistics.median(x.cpu_us for x in ours)
            label = "start + result" if route == "start_result" else "status read"
            print(
                f"| {framework} | {label} | {hr:.0f} | {orr:.0f} | {orr / hr:.2f}x | "
                f"{hc:.0f} | {oc:.0f} | {hc / oc:.2f}x |"
            )
            row.update(
                {
                    f"{route}_by_hand": round(hr, 1),
                    route: round(orr, 1),
                    f"{route}_ratio": round(orr / hr, 3),
                    f"{route}_cpu_us_by_hand": round(hc, 1),
                    f"{route}_cpu_us": round(oc, 1),
                    f"{route}_cpu_ratio": round(hc / oc, 3),
                }
            )
        rows.append(row)
    return rows


def over_time(windows: int, seconds: float, scripts: dict[str, Path]) -> list[dict[str, object]]:
    apps = FRAMEWORKS["FastAPI on uvicorn"]
    series: dict[str, list[tuple[float, int]]] = {}
    for name in NAMES:
        app = apps[name]
        with serving(app) as (base, pid):
            for _ in range(windows):
                rate, _ = start_load(base, app, scripts["start"], seconds)
                series.setdefault(name, []).append((rate, rss_kib(pid)))
    print(
        f"\nOver time: one FastAPI server under start + result load, {windows} windows of "
        f"{seconds:g} s (requests/s, and the server's RSS in MiB after each)\n"
    )
    print("| app | " + " | ".join(f"window {i + 1}" for i in range(windows)) + " | last / first |")
    print("|---|" + "---:|" * (windows + 1))
    rows: list[dict[str, object]] = []
    for name, points in series.items():
        cells = " | ".join(f"{rate:.0f} ({rss / 1024:.0f} MiB)" for rate, rss in points)
        ratio = points[-1][0] / points[0][0]
        print(f"| {name} | {cells} | {ratio:.2f}x |")
        rows.append(
            {
                "app": name,
                "per_second": [round(rate, 1) for rate, _ in points],
                "rss_kib": [rss for _, rss in points],
                "last_over_first": round(ratio, 3),
            }
        )
    return rows


def main(
    seconds: float = 4,
    rounds: int = 3,
    windows: int = 6,
    window_seconds: float = 10,
    only: str | None = None,
) -> dict[str, list[dict[str, object]]]:
    """Measure, print both tables, and return their rows. ``only``: the frameworks
    whose name contains it, and no over-time run."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        scripts = {"start": Path(tmp) / "start.lua", "read": Path(tmp) / "read.lua"}
        scripts["start"].write_text(START_LUA)
        scripts["read"].write_text(READ_LUA)
        if only is not None:
            return {"adapters": adapters(seconds, rounds, scripts, only)}
        return {
            "adapters": adapters(seconds, rounds, scripts),
            "over_time": over_time(windows, window_seconds, scripts),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="a smoke run")
    parser.add_argument(
        "--only",
        help="only the frameworks whose name contains this (flask, django on); no over-time",
    )
    args = parser.parse_args()
    if args.tiny:
        main(1, 1, 2, 1)
    else:
        main(args.seconds, args.rounds, only=args.only)
