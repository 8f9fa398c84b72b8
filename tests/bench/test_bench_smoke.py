"""The benchmark runner itself, on the smallest sizes: it measures, prints and writes
its JSON (the figures are not judged: a test is no place for timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import procs


@pytest.mark.multiprocess
@pytest.mark.timeout(300)
def test_make_bench_runs_on_a_tiny_size(tmp_path: Path) -> None:
    argv = [sys.executable, "bench/run.py", "--tiny", "--backend", "dev", "--out", str(tmp_path)]
    out = subprocess.run(argv, cwd=procs.ROOT, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads((tmp_path / "latest.json").read_text())
    assert {row["path"] for row in report["gateway"]} == {
        "sdk",
        "core",
        "fastapi-by-hand",
        "fastapi",
    }
    assert {row["path"] for row in report["distributed"]} == {"sdk", "by-hand", "gateway"}
    assert {row["against"] for row in report["distributed"]} == {"by-hand"}
    assert [row["framework"] for row in report["adapters"]] == [
        "FastAPI on uvicorn",
        "Flask on gunicorn (gthread)",
        "Django on gunicorn (gthread)",
        "Django on uvicorn",
    ]
    assert all(row["start_result"] > 0 and row["status"] > 0 for row in report["adapters"])
    assert all(row["status_cpu_us"] > 0 for row in report["adapters"])
    assert [row["app"] for row in report["over_time"]] == ["resonate", "by-hand"]
    assert all(len(row["per_second"]) == 2 for row in report["over_time"])
    assert [row["app"] for row in report["longpoll"]] == ["bare", "resonate"]
    assert {row["path"] for row in report["bridge"]} >= {"bare hop", "facade", "flask view"}
    assert all(row["start_result_ratio"] > 0 for row in report["gateway"])
    assert "| sequential | core |" in out.stdout
    flow = report["flow"]["embedded"]
    assert set(flow) == {"plain", "priority", "concurrency", "rate", "rate (reject)", "debounce"}
    assert all(row["us_per_start"] > 0 and row["ratio"] > 0 for row in flow.values())
