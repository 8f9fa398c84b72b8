"""Wall time of virtual-time scenarios under each framework's test client.

``python bench/bench_virtual_clock.py`` (from the checkout, ``PYTHONPATH=src:.``):
a function sleeping 3 days, a step retried with backoff 2/4/8 s, a promise timing
out after a week, 24 hourly schedule ticks, and 72 ticks over 3 days. Each is
timed from the app's start to its end (the app's start and stop included); the
median of ``--runs`` runs is printed. Nothing here is judged: the tests assert
order and outcome, never time.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from resonate_web.testing import VirtualClock, virtual_time
from tests.support import clocked
from tests.support.clocked_apps import FRAMEWORKS, Http, served

SPEC = "tests.support.clocked:functions"
UNSCHEDULED = "tests.support.clocked:unscheduled"


def nap(clock: VirtualClock, http: Http) -> None:
    id = uuid.uuid4().hex
    http.start("nap", id, 3)
    assert clock.run_until_settled(id)["status"] == "resolved"


def backoff(clock: VirtualClock, http: Http) -> None:
    id = uuid.uuid4().hex
    http.start("retried", id, id, 3)
    assert clock.run_until_settled(id)["result"] == 4


def week(clock: VirtualClock, http: Http) -> None:
    id = uuid.uuid4().hex
    http.start("approve", id, "x")
    clock.advance(timedelta(weeks=1))
    assert http.status(id)["status"] == "rejected"


def ticks(hours: int) -> Callable[[VirtualClock, Http], None]:
    def run(clock: VirtualClock, http: Http) -> None:
        http.get("/resonate/schedules")  # Flask and Django start on first use
        clock.settle()
        clocked.TICKS.clear()
        clock.advance(timedelta(hours=hours))
        assert len(clocked.TICKS) == hours, len(clocked.TICKS)

    return run


Scenario = Callable[[VirtualClock, Http], None]

#: Name, scenario, whether the app has the hourly schedule (whose ticks then run
#: on the way: 72 of them in 3 days, 168 in a week).
SCENARIOS: list[tuple[str, Scenario, bool]] = [
    ("sleep 3 days", nap, False),
    ("sleep 3 days, hourly ticks on the way", nap, True),
    ("backoff 2/4/8 s", backoff, False),
    ("promise times out after a week", week, False),
    ("a week, hourly ticks on the way", week, True),
    ("24 hourly ticks", ticks(24), True),
    ("72 hourly ticks (3 days)", ticks(72), True),
]


def measure(framework: str, scenario: Scenario, scheduled: bool) -> float:
    functions, spec = (clocked.functions, SPEC) if scheduled else (clocked.unscheduled, UNSCHEDULED)
    started = time.perf_counter()
    with virtual_time() as clock, served(framework, functions, spec) as http:
        scenario(clock, http)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    logging.disable(logging.WARNING)
    print(f"{'scenario':40}" + "".join(f"{f:>10}" for f in FRAMEWORKS) + "   (median s)")
    for name, scenario, scheduled in SCENARIOS:
        row = [
            statistics.median(measure(f, scenario, scheduled) for _ in range(runs))
            for f in FRAMEWORKS
        ]
        print(f"{name:40}" + "".join(f"{t:10.3f}" for t in row))


if __name__ == "__main__":
    main()
