"""The pytest plugin of :mod:`resonate_web.testing` (registered as ``pytest11``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resonate_web.testing import DEFAULT_START, VirtualClock, virtual_time


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "resonate_clock(start): where the resonate_clock fixture's virtual time starts "
        "(an ISO 8601 string or an aware datetime; default 2030-01-01T00:00:00Z)",
    )


@pytest.fixture
def resonate_clock(request: pytest.FixtureRequest) -> Iterator[VirtualClock]:
    """A virtual clock every resonate-web runtime started during the test runs on.

    Move it with ``advance``/``aadvance``, read ``now`` and ``upcoming()``, wait with
    ``settle()``, or let ``run_until_settled(id)`` skip time until an invocation
    settles. Embedded backend only. A Flask or Django runtime already started
    (on real time) is stopped first and starts again on first use, on this
    clock; the runtimes started on it are stopped at the end of the test.
    """
    marker = request.node.get_closest_marker("resonate_clock")
    start = marker.kwargs.get("start", DEFAULT_START) if marker is not None else DEFAULT_START
    with virtual_time(start) as clock:
        yield clock
