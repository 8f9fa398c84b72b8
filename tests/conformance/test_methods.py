"""A method a path does not serve: 405, with ``Allow`` listing every method it does."""

from __future__ import annotations

import httpx
import pytest

from tests.conformance.helpers import P


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/schedules", {"GET", "POST"}),
        ("PUT", "/schedules", {"GET", "POST"}),
        ("OPTIONS", "/schedules/nightly", {"GET", "DELETE"}),
        ("POST", "/schedules/nightly", {"GET", "DELETE"}),
        ("DELETE", "/functions", {"GET"}),
        ("DELETE", "/invocations/some-id", {"GET"}),
        ("GET", "/functions/add", {"POST"}),
    ],
)
def test_allow_lists_every_method_of_the_path(
    client: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, P + path)
    if method == "OPTIONS" and response.status_code < 300:
        pass  # a framework may answer OPTIONS itself (Flask does), with the same Allow
    else:
        assert response.status_code == 405, response.text
    allow = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed <= allow and allow <= allowed | {"HEAD", "OPTIONS"}, allow
