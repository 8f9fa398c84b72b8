"""The long-poll and sync-bridge benchmarks on their smallest sizes: they measure,
print their tables and return their rows (the figures are not judged: a test is no
place for timings)."""

from __future__ import annotations

import sys

import pytest

from tests.support import procs

sys.path.insert(0, str(procs.ROOT / "bench"))

import bench_bridge
import bench_longpoll


def numbers(row: dict[str, object], *keys: str) -> bool:
    return all(isinstance(row[key], int | float) for key in keys)


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
def test_longpoll_bench_runs_on_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    rows = bench_longpoll.main(20, 1, 0.2)
    assert [row["app"] for row in rows] == ["bare", "resonate"]
    for row in rows:
        assert set(row) == {
            "app",
            "waiters",
            "rss_before_kib",
            "rss_parked_kib",
            "kib_per_waiter",
            "kib_per_waiter_ratio",
            "cpu_seconds_while_parked",
            "cpu_window_s",
            "settle_to_last_answer_ms",
            "settle_ratio",
            "cpu_seconds_answering",
            "answering_ratio",
            "against",
        }
        assert row["waiters"] == 20
        assert row["against"] == "bare"
        assert numbers(
            row,
            "rss_before_kib",
            "rss_parked_kib",
            "kib_per_waiter",
            "cpu_seconds_while_parked",
            "settle_to_last_answer_ms",
            "cpu_seconds_answering",
        )
        for ratio in ("kib_per_waiter_ratio", "settle_ratio", "answering_ratio"):
            assert row[ratio] is None or isinstance(row[ratio], float)
    assert "| resonate |" in capsys.readouterr().out


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
def test_bridge_bench_runs_on_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    rows = bench_bridge.main(50, 1)
    assert {(row["operation"], row["path"]) for row in rows} == set(bench_bridge.BASELINE)
    for row in rows:
        assert set(row) == {"operation", "path", "us_per_op", "ratio", "against"}
        assert numbers(row, "us_per_op", "ratio")
    assert "| promises.get | facade |" in capsys.readouterr().out
