"""Cancel, list and tree (contract v2), on every adapter."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conformance.helpers import JSON_HEADERS, P, assert_problem, start, status


def _ids(page: dict[str, object]) -> list[str]:
    return [str(doc["id"]) for doc in page["invocations"]]  # type: ignore[index,union-attr]


# ── cancel ───────────────────────────────────────────────────────────────────


def test_cancel_settles_a_pending_invocation_as_canceled(client: httpx.Client, uid: str) -> None:
    start(client, "slow", {"args": [30, "never"]}, id=uid)
    canceled = client.post(f"{P}/invocations/{uid}/cancel")
    assert canceled.status_code == 200, canceled.text
    doc = canceled.json()
    assert doc["status"] == "canceled" and doc["settled_at"]
    assert doc["links"]["cancel"] == f"{P}/invocations/{uid}/cancel"
    assert status(client, uid, wait=5).json()["status"] == "canceled"
    again = client.post(f"{P}/invocations/{uid}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "canceled"


def test_cancel_of_a_settled_invocation_is_409(client: httpx.Client, uid: str) -> None:
    start(client, "add", {"args": [1, 2]}, id=uid, wait=10)
    assert_problem(client.post(f"{P}/invocations/{uid}/cancel"), 409, "conflict")
    assert status(client, uid).json()["result"] == 3


def test_cancel_of_an_unknown_invocation_is_404(client: httpx.Client) -> None:
    assert_problem(
        client.post(f"{P}/invocations/nobody-{uuid.uuid4().hex}/cancel"), 404, "not-found"
    )
    assert_problem(client.post(f"{P}/invocations/a..b/cancel"), 400, "invalid-id")


# ── list ─────────────────────────────────────────────────────────────────────


def test_list_is_newest_first_and_filters_by_function_and_status(
    client: httpx.Client, uid: str
) -> None:
    keys = [f"{uid}-{n}" for n in range(3)]
    for key in keys:
        start(client, "count", {"args": [key]}, id=key, wait=10)
    start(client, "slow", {"args": [30, "x"]}, id=f"{uid}-slow")
    page = client.get(f"{P}/invocations", params={"function": "count", "limit": "100"}).json()
    listed = [i for i in _ids(page) if i.startswith(uid)]
    assert listed == list(reversed(keys))  # newest first, only count's
    for doc in page["invocations"]:
        assert doc["function"] == "count" and "awaiting" not in doc
    pending = client.get(f"{P}/invocations", params={"status": "pending", "limit": "100"}).json()
    assert f"{uid}-slow" in _ids(pending)
    assert not set(keys) & set(_ids(pending))


def test_list_pages_follow_the_cursor(client: httpx.Client, uid: str) -> None:
    keys = [f"{uid}-{n}" for n in range(5)]
    for key in keys:
        start(client, "count", {"args": [key]}, id=key, wait=10)
    seen: list[str] = []
    params: dict[str, str] = {"function": "count", "limit": "2"}
    for _ in range(100):
        page = client.get(f"{P}/invocations", params=params).json()
        assert len(page["invocations"]) <= 2
        seen += _ids(page)
        if page["next"] is None:
            break
        params = {"function": "count", "limit": "2", "cursor": page["next"]}
    mine = [i for i in seen if i.startswith(uid)]
    assert mine == list(reversed(keys))
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "x"},
        {"status": "done"},
        {"function": "not_exposed"},
        {"cursor": "not-a-cursor"},
        {"sort": "asc"},
        {"schedule": "a..b"},
    ],
)
def test_a_bad_query_is_400_invalid_query(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get(f"{P}/invocations", params=params)
    assert response.status_code == 400
    assert response.json()["type"].rsplit(":", 1)[-1] in {"invalid-query", "invalid-id"}


def test_an_empty_cursor_is_the_first_page(client: httpx.Client, uid: str) -> None:
    start(client, "add", {"args": [1, 1]}, id=uid, wait=5)
    first = client.get(f"{P}/invocations", params={"function": "add", "limit": "1"})
    empty = client.get(f"{P}/invocations", params={"function": "add", "limit": "1", "cursor": ""})
    assert empty.status_code == 200, empty.text
    assert empty.json()["invocations"][0]["id"] == first.json()["invocations"][0]["id"] == uid


def test_a_cursor_continues_only_its_own_query(client: httpx.Client, uid: str) -> None:
    for n in range(3):
        start(client, "count", {"args": [f"{uid}-{n}"]}, id=f"{uid}-{n}", wait=10)
    page = client.get(f"{P}/invocations", params={"function": "count", "limit": "1"}).json()
    assert page["next"]
    other = client.get(f"{P}/invocations", params={"function": "add", "cursor": page["next"]})
    assert_problem(other, 400, "invalid-query")


# ── tree ─────────────────────────────────────────────────────────────────────


def test_tree_of_a_workflow_nests_its_steps(client: httpx.Client, uid: str) -> None:
    start(client, "countdown", {"args": [2, 0.05]}, id=uid, wait=15)
    response = client.get(f"{P}/invocations/{uid}/tree")
    assert response.status_code == 200
    tree = response.json()
    assert tree["id"] == uid and tree["kind"] == "call" and tree["function"] == "countdown"
    assert tree["status"] == "resolved" and tree["created_at"] and tree["settled_at"]
    assert [c["kind"] for c in tree["children"]] == ["sleep", "sleep"]
    assert all(c["status"] == "resolved" for c in tree["children"])
    assert "result" not in tree and "value" not in str(tree)


def test_tree_shows_an_awaited_promise(client: httpx.Client, uid: str) -> None:
    start(client, "approval", {"args": ["ok?"]}, id=uid, wait=0.5)
    for _ in range(200):
        children = client.get(f"{P}/invocations/{uid}/tree").json()["children"]
        if children:
            break
    assert [(c["kind"], c["status"]) for c in children] == [("promise", "pending")]


def test_tree_of_an_unknown_invocation_is_404(client: httpx.Client) -> None:
    assert_problem(client.get(f"{P}/invocations/nobody-{uuid.uuid4().hex}/tree"), 404, "not-found")


def test_a_ctx_run_step_is_named_by_its_function(client: httpx.Client, uid: str) -> None:
    """The SDK leaves a local step's param empty; its function's name rides along."""
    start(client, "wide", {"args": [2]}, id=uid)
    tree: dict[str, Any] = {}
    for _ in range(200):
        tree = client.get(f"{P}/invocations/{uid}/tree").json()
        if len(tree["children"]) == 3:
            break
        status(client, uid, wait=0.05)
    steps = [(c["kind"], c.get("function")) for c in tree["children"]]
    assert steps == [("call", "square"), ("call", "square"), ("promise", None)]
    client.post(f"{P}/invocations/{uid}/cancel")


def test_tree_with_values_shows_each_steps_arguments_and_outcome(
    client: httpx.Client, uid: str
) -> None:
    """A saga whose second step fails: each ``ctx.run`` step's arguments (which the
    SDK does not store: resonate-web records them), result or error."""
    assert start(client, "book_trip", {"args": ["oslo", "hotel"]}, id=uid, wait=15).json()[
        "status"
    ] == ("rejected")
    response = client.get(f"{P}/invocations/{uid}/tree", params={"values": "true"})
    assert response.status_code == 200, response.text
    tree = response.json()
    failure = {"type": "ValueError", "message": "no hotel available for oslo"}
    assert (tree["args"], tree["kwargs"], tree["error"]) == (["oslo", "hotel"], {}, failure)
    assert "result" not in tree
    steps = [
        (c["function"], c["status"], c["args"], c.get("result"), c.get("error"))
        for c in tree["children"]
    ]
    assert steps == [
        ("reserve", "resolved", ["oslo", "flight", False], "flight:oslo", None),
        ("reserve", "rejected", ["oslo", "hotel", True], None, failure),
        ("release", "resolved", ["oslo", "flight"], "released flight:oslo", None),
    ]
    assert all(c["created_at"] <= c["settled_at"] for c in tree["children"])
    # Without the parameter (or with false), no values, as before.
    for params in ({}, {"values": "false"}):
        plain = client.get(f"{P}/invocations/{uid}/tree", params=params).json()
        assert not {"args", "kwargs", "result", "error"} & set(plain)
        assert not {"args", "result", "error"} & set(plain["children"][0])
    assert_problem(
        client.get(f"{P}/invocations/{uid}/tree", params={"values": "yes"}), 400, "invalid-query"
    )


def test_tree_values_of_a_sleep_and_an_awaited_promise(client: httpx.Client, uid: str) -> None:
    start(client, "countdown", {"args": [1, 0.05]}, id=uid, wait=15)
    tree = client.get(f"{P}/invocations/{uid}/tree", params={"values": "true"}).json()
    assert (tree["args"], tree["result"]) == ([1, 0.05], 1)
    (sleep,) = tree["children"]
    assert sleep["kind"] == "sleep" and not {"args", "result", "error"} & set(sleep)
    other = f"{uid}-a"
    start(client, "approval", {"args": ["ok?"]}, id=other, wait=0.5)
    for _ in range(200):
        awaiting = status(client, other, wait=0.05).json().get("awaiting")
        if awaiting:
            break
    resolved = client.post(
        f"{P}/promises/{awaiting[0]}/resolve",
        content=json.dumps({"value": {"ok": True}}).encode(),
        headers=JSON_HEADERS,
    )
    assert resolved.status_code == 200
    status(client, other, wait=10)
    tree = client.get(f"{P}/invocations/{other}/tree", params={"values": "true"}).json()
    (promise,) = tree["children"]
    assert (promise["kind"], promise["result"]) == ("promise", {"ok": True})
    assert tree["result"] == {"ok": True}
