"""GET /functions and exposure."""

from __future__ import annotations

import httpx

from tests.conformance.helpers import P, assert_problem, start


def test_lists_exposed_functions_with_schemas(client: httpx.Client) -> None:
    response = client.get(f"{P}/functions")
    assert response.status_code == 200
    by_name = {f["name"]: f for f in response.json()["functions"]}
    assert {"add", "slow", "fail", "countdown", "approval"} <= set(by_name)
    add = by_name["add"]
    assert add["mode"] == "inline" and add["target"] is None and add["version"] == 1
    assert add["parameters"]["properties"]["a"]["type"] == "integer"
    assert add["parameters"]["required"] == ["a", "b"]
    remote = by_name["remote_add"]
    assert remote["mode"] == "dispatch" and remote["target"] == "nobody"
    assert set(remote["parameters"]["properties"]) == {"a", "b"}
    assert by_name["remote_raw"]["parameters"] is None


def test_a_name_not_exposed_is_404(client: httpx.Client) -> None:
    body = assert_problem(start(client, "os.system", {"args": ["true"]}), 404, "unknown-function")
    assert "os.system" in body["detail"]
    assert_problem(start(client, "nope"), 404, "unknown-function")
