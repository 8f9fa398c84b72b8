"""Test durable code without waiting: one virtual clock for the app under test.

Installed with resonate-web, and a pytest plugin (``pytest11`` entry point): a
test that asks for the ``resonate_clock`` fixture runs every resonate-web
runtime that starts during it on a :class:`VirtualClock` (embedded backend
only), which moves only when the test says so::

    def test_reminder(resonate_clock):
        with TestClient(app) as client:
            client.post("/functions/remind/invocations", json={"id": "r1", ...})
            doc = resonate_clock.run_until_settled("r1")   # three days, at once
            assert doc["status"] == "resolved"

See docs/testing.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from resonate_web._core.runtime import portals
from resonate_web._core.timekeeping import (
    DEFAULT_START,
    Deadline,
    StillPending,
    VirtualClock,
    activate,
    active,
    deactivate,
)

__all__ = [
    "DEFAULT_START",
    "Deadline",
    "StillPending",
    "VirtualClock",
    "activate",
    "active",
    "deactivate",
    "virtual_time",
]


def _restart(clock: VirtualClock | None) -> None:
    """Stop the started portals (Flask, Django) on ``clock`` (all, if None): each
    starts again on first use, on the clock active then."""
    for portal in portals():
        runtime = portal.runtime
        if portal.own_loop and runtime.started and clock in (None, runtime.clock):
            portal.close()


@contextlib.contextmanager
def virtual_time(start: datetime | str = DEFAULT_START) -> Iterator[VirtualClock]:
    """A :class:`VirtualClock`, active for the block: what the ``resonate_clock``
    fixture is, for any test runner.

    A Flask or Django runtime already started (on real time) is stopped first and
    starts again at its next use, on this clock; those started on it are stopped
    at the end of the block.
    """
    clock = VirtualClock(start)
    _restart(None)
    activate(clock)
    try:
        yield clock
    finally:
        deactivate(clock)
        _restart(clock)
