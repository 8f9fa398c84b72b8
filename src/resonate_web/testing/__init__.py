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

from resonate_web.timekeeping import (
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
]
