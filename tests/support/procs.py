"""Real server processes for tests: started on free 127.0.0.1 ports, ended by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
#: What the processes the tests start import: this checkout's package (before any
#: installed copy of it, such as another checkout's editable install), and its tests.
PYTHONPATH = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before serving {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last})")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    """End ``proc`` (and only it): ``sig``, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def wait_answer(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until ``url`` answers at all (any status: a refusing app answers 503)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before serving {url}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    ready_url: str | None = None,
    cwd: Path = ROOT,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RESONATE_")}
    full_env["PYTHONPATH"] = PYTHONPATH
    full_env.update(env or {})
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(list(argv), env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        if ready_url:
            wait_http(ready_url, proc=proc)
        yield proc
    finally:
        stop(proc)
        if log:
            out.close()  # type: ignore[union-attr]


@contextmanager
def uvicorn(
    app: str, *, env: Mapping[str, str] | None = None, cwd: Path = ROOT, log: Path | None = None
) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port)]
    with process(argv, env=env, cwd=cwd, log=log) as proc:
        # Any answer will do: a gateway whose backend is down still serves (503s).
        wait_answer(f"{base}/resonate/functions", proc)
        yield base


# ── gateway/worker deployments: dev server, workers, gateways ───────────────


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@contextmanager
def dev_server(*, log: Path | None = None) -> Iterator[str]:
    """``resonate-web dev`` on a free port; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = python_module("resonate_web.cli", "dev", "--port", str(port))
    with process(argv, ready_url=f"{url}/health", log=log):
        yield url


def is_postgres(url: str) -> bool:
    """Whether a backend URL is a Postgres DSN (resonate-pg) rather than a server URL."""
    return url.startswith(("postgresql://", "postgres://"))


def streams(server_url: str) -> dict[str, int]:
    """Connected event streams per group, as the dev server reports them."""
    found: dict[str, int] = httpx.get(f"{server_url}/health", timeout=5).json()["streams"]
    return found


def wait_streams(server_url: str, group: str, count: int, timeout: float = 30.0) -> None:
    """Wait until ``group`` has exactly ``count`` connected streams on the dev server.

    Postgres has no streams to count (each process drains its own rows): there
    this returns at once.
    """
    if is_postgres(server_url):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if streams(server_url).get(group, 0) == count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{group}: {streams(server_url)} after {timeout}s, wanted {count}")


def backend_request(url: str, envelope: Mapping[str, Any]) -> dict[str, Any]:
    """Send one Resonate protocol request to the backend at ``url``; its response envelope.

    To the dev server it is a ``POST /``; to Postgres the same envelope goes
    through ``resonate.resonate_rpc``, the stored procedure the connector calls.
    """
    if is_postgres(url):
        import psycopg

        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT resonate.resonate_rpc(%s::jsonb)::text", (json.dumps(envelope),)
            ).fetchone()
        assert row is not None
        found: dict[str, Any] = json.loads(row[0])
        return found
    answer: dict[str, Any] = httpx.post(f"{url}/", json=envelope, timeout=5).json()
    return answer


def wait_promise(url: str, promise_id: str, timeout: float = 30) -> None:
    """Wait until the backend holds promise ``promise_id`` (asked in its own protocol)."""
    envelope = {"kind": "promise.get", "head": {"corrId": "t"}, "data": {"id": promise_id}}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if backend_request(url, envelope)["head"]["status"] == 200:
            return
        time.sleep(0.02)
    raise TimeoutError(f"no promise {promise_id} within {timeout}s")


def wait_log_line(
    log: Path, *needles: str, proc: subprocess.Popen[bytes], timeout: float = 30.0
) -> str:
    """Wait for a line of ``log`` that contains every one of ``needles``; that line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if all(n in line for n in needles):
                    return line
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} (log: {log})")
        time.sleep(0.05)
    raise TimeoutError(f"no line with {needles} in {log} within {timeout}s")


def start_worker(
    module: str,
    server_url: str,
    *,
    group: str = "workers",
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``resonate-web worker`` (end it with :func:`stop`); returns once it listens.

    On the dev server that is when its group has one more connected stream; on
    Postgres, when the worker logs ``worker ready: ... os_pid=<its pid>`` (it
    drains its group's rows from then on).
    """
    if is_postgres(server_url) and log is None:
        log = Path(tempfile.mkstemp(prefix="resonate-web-worker-", suffix=".log")[1])
    argv = python_module("resonate_web.cli", "worker", module, "--group", group)
    return start_member(argv, server_url, group=group, env=env, log=log)


def start_member(
    argv: Sequence[str],
    server_url: str,
    *,
    group: str,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a process that joins ``group`` (any SDK's worker, ``RESONATE_URL`` set for
    it); returns once it listens (see :func:`start_worker`: on Postgres it must be a
    resonate-web worker logging to ``log``)."""
    postgres = is_postgres(server_url)
    before = 0 if postgres else streams(server_url).get(group, 0)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RESONATE_")}
    full_env.update({"PYTHONPATH": PYTHONPATH, "RESONATE_URL": server_url, **(env or {})})
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        list(argv), env=full_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
    )
    if log:
        out.close()  # type: ignore[union-attr]
    try:
        if postgres:
            assert log is not None
            wait_log_line(log, "worker ready:", f"os_pid={proc.pid} ", proc=proc)
            return proc
        deadline = time.monotonic() + 30
        while streams(server_url).get(group, 0) <= before:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("worker did not connect within 30s")
            time.sleep(0.05)
    except BaseException:
        stop(proc, signal.SIGKILL)
        raise
    return proc


@contextmanager
def gateway(
    app: str, server_url: str, *, env: Mapping[str, str] | None = None, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A uvicorn gateway against ``server_url``; yields its base URL and process."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port)]
    full_env = {"RESONATE_URL": server_url, **(env or {})}
    with process(argv, env=full_env, ready_url=f"{base}/resonate/health", log=log) as proc:
        yield base, proc


def executions(execlog: Path) -> list[tuple[int, str, str]]:
    """``(pid, event, id)`` per line a recording test function appended to ``execlog``."""
    if not execlog.exists():
        return []
    rows = []
    for line in execlog.read_text().splitlines():
        pid, event, id = line.split(" ", 2)
        rows.append((int(pid), event, id))
    return rows


def wait_execution(execlog: Path, event: str, id: str, timeout: float = 30) -> int:
    """The pid of the first process that recorded ``event`` for ``id``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, found_event, found_id in executions(execlog):
            if (found_event, found_id) == (event, id):
                return pid
        time.sleep(0.02)
    raise TimeoutError(f"no {event} of {id} within {timeout}s")


def settle(base: str, id: str, timeout: float = 60, prefix: str = "/resonate") -> dict[str, Any]:
    """Long-poll invocation ``id`` on a gateway until it settles; its status document."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = httpx.get(f"{base}{prefix}/invocations/{id}", params={"wait": "10"}, timeout=20)
        resp.raise_for_status()
        doc: dict[str, Any] = resp.json()
        if doc["status"] != "pending":
            return doc
    raise TimeoutError(f"{id} still pending after {timeout}s")


@contextmanager
def gunicorn(
    app: str,
    *,
    workers: int = 1,
    threads: int = 8,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    log: Path | None = None,
    ready_path: str = "/resonate/functions",
) -> Iterator[str]:
    """``app`` under gunicorn's threaded workers; yields the base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--graceful-timeout",
        "5",
        *args,
        app,
    ]
    with process(argv, env=env, cwd=cwd, log=log) as proc:
        wait_answer(base + ready_path, proc)
        yield base
