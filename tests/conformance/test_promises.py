"""Human in the loop: reading and settling the promises an invocation awaits."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conformance.helpers import P, assert_problem, start, status
from tests.support.adapters import ADAPTERS


def _awaiting(client: httpx.Client, id: str) -> str:
    """Start ``approval`` as ``id``; the id of the promise it awaits."""
    doc = start(client, "approval", {"args": ["ship it?"]}, id=id, wait=0.5).json()
    for _ in range(200):
        if doc.get("awaiting"):
            return str(doc["awaiting"][0])
        doc = status(client, id, wait=0.1).json()
    raise AssertionError(f"{id} never listed what it awaits: {doc}")


def _settle(client: httpx.Client, id: str, action: str, body: object = None) -> httpx.Response:
    headers = {"content-type": "application/json"} if body is not None else {}
    content = b"" if body is None else json.dumps(body).encode()
    return client.post(f"{P}/promises/{id}/{action}", content=content, headers=headers)


def test_resolve_hands_the_json_value_to_the_function(client: httpx.Client, uid: str) -> None:
    promise = _awaiting(client, uid)
    got = client.get(f"{P}/promises/{promise}")
    assert got.status_code == 200
    assert got.json() == {"id": promise, "status": "pending", "awaited_by": uid}
    value = {"approved": True, "by": "ada", "notes": [1, 2.5, None]}
    resolved = _settle(client, promise, "resolve", {"value": value})
    assert resolved.status_code == 200
    assert resolved.json() == {
        "id": promise,
        "status": "resolved",
        "value": value,
        "awaited_by": uid,
    }
    doc = status(client, uid, wait=10).json()
    assert doc["status"] == "resolved"
    assert doc["result"] == value
    assert "awaiting" not in doc


def test_settling_the_same_way_again_is_200_another_way_is_409(
    client: httpx.Client, uid: str
) -> None:
    promise = _awaiting(client, uid)
    assert _settle(client, promise, "resolve", {"value": 1}).status_code == 200
    again = _settle(client, promise, "resolve", {"value": 1})
    assert again.status_code == 200 and again.json()["value"] == 1
    assert_problem(_settle(client, promise, "reject", {"error": "no"}), 409, "conflict")
    assert_problem(_settle(client, promise, "cancel"), 409, "conflict")


def test_reject_makes_the_function_raise_with_the_json_error(
    client: httpx.Client, uid: str
) -> None:
    promise = _awaiting(client, uid)
    rejected = _settle(client, promise, "reject", {"error": {"reason": "over budget"}})
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["value"] == {"reason": "over budget"}
    doc = status(client, uid, wait=10).json()
    assert doc["status"] == "rejected"
    assert doc["error"]["message"] == '{"reason":"over budget"}'


def test_a_rejection_cannot_smuggle_a_pickle_into_the_worker(
    client: httpx.Client, uid: str
) -> None:
    """The SDK unpickles a rejection's ``__py_pickle``: a caller's error never becomes one."""
    promise = _awaiting(client, uid)
    evil = {
        "__py_pickle": "gASVJQAAAAAAAACMCGJ1aWx0aW5zlIwIS2V5RXJyb3KUk5SMBXB3bmVklIWUUpQu",
        "message": "x",
    }
    assert _settle(client, promise, "reject", {"error": evil}).status_code == 200
    doc = status(client, uid, wait=10).json()
    assert doc["status"] == "rejected"
    assert doc["error"]["type"] == "ApplicationError"  # not what the pickle would load


def test_cancel_a_promise(client: httpx.Client, uid: str) -> None:
    promise = _awaiting(client, uid)
    canceled = _settle(client, promise, "cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert status(client, uid, wait=10).json()["status"] == "rejected"


def test_unknown_and_unawaited_promises_are_404(client: httpx.Client, uid: str) -> None:
    assert_problem(client.get(f"{P}/promises/nothing-here"), 404, "not-found")
    assert_problem(_settle(client, "nothing-here", "resolve", {"value": 1}), 404, "not-found")
    # An invocation's own promise is not one a person settles here ...
    start(client, "slow", {"args": [30, "x"]}, id=uid)
    assert_problem(client.get(f"{P}/promises/{uid}"), 404, "not-found")
    assert_problem(_settle(client, uid, "resolve", {"value": 1}), 404, "not-found")
    assert status(client, uid).json()["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "status_code", "slug"),
    [
        ({"valu": 1}, 400, "invalid-json"),
        ([1], 400, "invalid-json"),
        ("not json", 415, "unsupported-media-type"),
    ],
)
def test_bad_settle_bodies(
    client: httpx.Client, uid: str, body: object, status_code: int, slug: str
) -> None:
    promise = _awaiting(client, uid)
    if body == "not json":
        response = client.post(
            f"{P}/promises/{promise}/resolve",
            content=b"yes",
            headers={"content-type": "text/plain"},
        )
    else:
        response = _settle(client, promise, "resolve", body)
    assert_problem(response, status_code, slug)
    assert client.get(f"{P}/promises/{promise}").json()["status"] == "pending"


@pytest.mark.parametrize("bad", ["a..b", "-x", "x y"])
def test_bad_promise_ids_are_400(client: httpx.Client, bad: str) -> None:
    assert_problem(client.get(f"{P}/promises/{bad}"), 400, "invalid-id")


def test_policy_any_reaches_every_promise(adapter: str, uid: str) -> None:
    with ADAPTERS[adapter](promises="any") as client:
        start(client, "slow", {"args": [30, "x"]}, id=uid)
        got = client.get(f"{P}/promises/{uid}")
        assert got.status_code == 200 and got.json()["status"] == "pending"


def test_policy_off_serves_no_promise(adapter: str, uid: str) -> None:
    with ADAPTERS[adapter](promises="off") as client:
        promise = _awaiting(client, uid)
        assert_problem(client.get(f"{P}/promises/{promise}"), 404, "not-found")
        assert_problem(_settle(client, promise, "resolve", {"value": 1}), 404, "not-found")
        assert status(client, uid).json()["status"] == "pending"
