"""``examples/gateway_worker/run_distributed.sh demo``: the walk-through, end to end,
on the dev server the script starts and on a Postgres database."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support import procs

SCRIPT = procs.ROOT / "examples" / "gateway_worker" / "run_distributed.sh"


@pytest.mark.skipif(shutil.which("curl") is None, reason="the script uses curl")
@pytest.mark.parametrize("backend", ["dev", "pg"])
def test_the_demo_dispatches_polls_and_survives_a_killed_worker(
    backend: str, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESONATE_")}
    env.update(
        BIN=str(procs.BIN),
        DEV_PORT=str(procs.free_port()),
        GATEWAY_PORT=str(procs.free_port()),
        RESONATE_LEASE_TTL="3",
    )
    if backend == "pg":
        env["RESONATE_URL"] = request.getfixturevalue("pg_dsn")
    out = subprocess.run(
        ["bash", str(SCRIPT), "demo"], env=env, capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"status":"resolved","result":5' in out.stdout
    if backend == "dev":
        assert "lease of task demo-" in out.stdout  # the dev server moves worker-1's task on
    assert '"status":"resolved","result":"finished"' in out.stdout  # worker-1 was killed
    assert "worker stopped" in out.stdout  # worker-2 drained on the way out
    if backend == "pg":
        assert "[dev]" not in out.stdout  # no dev server: the database is the backend
