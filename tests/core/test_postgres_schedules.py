"""A schedule on Postgres (resonate-pg): the database fires a real minute tick, a
plain worker of the target group runs it, and the gateway reads it back.

resonate-pg ticks at minute granularity, so this waits up to a minute: marked
``slow``. The database comes from the suite's one Postgres cluster
(``tests/support/postgres.py``, the ``pg_dsn`` fixture of ``tests/conftest.py``).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.support import postgres, procs

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess, pytest.mark.timeout(240)]

APP = "tests.support.scheduled_app"


@pytest.fixture(scope="module")
def chicago_dsn(pg_dsn: str, pg_cluster: postgres.Cluster) -> str:
    """The suite's Postgres database for this module, its sessions' time zone not UTC,
    as many a production database's is not: resonate-pg reads crons in the session's
    time zone, and resonate-web's sessions say UTC."""
    name = pg_dsn.rsplit("/", 1)[1]
    pg_cluster.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'America/Chicago'")
    return pg_dsn


def test_a_minute_tick_fires_on_postgres_and_a_worker_resolves_it(
    chicago_dsn: str, pg_cluster: postgres.Cluster, tmp_path: Path
) -> None:
    pg_dsn = chicago_dsn
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
        at = datetime.fromisoformat(first)
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
    tags = pg_cluster.psql(
        pg_dsn,
        "-At",
        "-c",
        f"SELECT tags->>'resonate:schedule' FROM resonate.promises WHERE id = '{tick}'",
    )
    assert tags.stdout.strip() == id
