"""Real server processes for tests: started on free 127.0.0.1 ports, ended by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
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
    full_env["PYTHONPATH"] = str(ROOT)
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
    with process(argv, env=env, cwd=cwd, ready_url=f"{base}/resonate/health", log=log):
        yield base


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
