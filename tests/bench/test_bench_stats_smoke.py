"""The statistics benchmark on a small size: its aggregate query counts what it inserted
(the timings are not judged: a test is no place for them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import postgres, procs


@pytest.mark.multiprocess
@pytest.mark.timeout(300)
def test_the_stats_benchmark_counts_what_it_stored() -> None:
    if postgres.missing():
        pytest.skip(postgres.missing() or "")
    argv = [sys.executable, "bench/bench_stats.py", "--invocations", "2000", "--runs", "1"]
    env = {**os.environ, "PYTHONPATH": f"{procs.ROOT / 'src'}{os.pathsep}{procs.ROOT}"}
    out = subprocess.run(argv, cwd=procs.ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["rows"] == 6000  # 2,000 invocations, two steps each
    # fn3 holds every 8th invocation (250): by the state cycle, 3 in 5 resolved, 1 in 5
    # canceled, 1 in 5 timed out; durations between 10 and 5,009 ms.
    pending, resolved, rejected, canceled, timedout, p50, p95, most = report["fn3_30d_row"]
    assert (pending, resolved, rejected, canceled, timedout) == (0, 150, 0, 50, 50)
    assert 10 <= p50 <= p95 <= most <= 5009
