"""POST /functions/{name}: ids, replay, waiting, and every kind of bad input."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conformance.helpers import JSON_HEADERS, P, assert_problem, start, status
from tests.support.adapters import ADAPTERS


def test_wait_returns_the_settled_result(client: httpx.Client) -> None:
    response = start(client, "add", {"args": [1, 2]}, wait=10)
    assert response.status_code == 200
    doc = response.json()
    assert doc["status"] == "resolved" and doc["result"] == 3 and doc["function"] == "add"
    assert doc["links"]["self"] == f"{P}/invocations/{doc['id']}"
    assert "error" not in doc and "awaiting" not in doc


def test_without_wait_is_accepted_with_location(client: httpx.Client, uid: str) -> None:
    response = start(client, "slow", {"args": [0.5, "x"]}, id=uid)
    assert response.status_code == 202
    assert response.headers["location"] == f"{P}/invocations/{uid}"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["status"] == "pending"
    settled = status(client, uid, wait=10)
    assert settled.status_code == 200
    assert settled.json()["result"] == "x"


def test_generated_ids_are_unguessable(client: httpx.Client) -> None:
    ids = {start(client, "ping").json()["id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(len(i) >= 31 for i in ids)


def test_empty_body_means_no_arguments(client: httpx.Client) -> None:
    response = client.post(f"{P}/functions/ping", params={"wait": "5"})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "pong"


def test_replay_runs_once(client: httpx.Client, uid: str) -> None:
    first = start(client, "count", {"args": [uid]}, id=uid, wait=5)
    assert first.json()["result"] == 1
    again = start(client, "count", {"kwargs": {"key": uid}}, id=uid, wait=5)
    assert again.status_code == 200
    assert again.json() == first.json()
    probe = start(client, "executions", {"args": [uid]}, wait=5)
    assert probe.json()["result"] == 1


def test_positional_and_keyword_spellings_are_one_call(client: httpx.Client, uid: str) -> None:
    first = start(client, "add", {"args": [2, 3]}, id=uid, wait=5)
    second = start(client, "add", {"kwargs": {"a": 2, "b": 3}}, id=uid, wait=5)
    mixed = start(client, "add", {"args": [2], "kwargs": {"b": 3}}, id=uid, wait=5)
    assert first.json() == second.json() == mixed.json()
    assert first.json()["result"] == 5


def test_reused_key_with_other_arguments_is_422_and_harmless(
    client: httpx.Client, uid: str
) -> None:
    original = start(client, "add", {"args": [1, 1]}, id=uid, wait=5)
    assert original.json()["result"] == 2
    assert_problem(start(client, "add", {"args": [1, 2]}, id=uid), 422, "idempotency-key-reused")
    assert_problem(start(client, "ping", id=uid), 422, "idempotency-key-reused")
    after = status(client, uid)
    assert after.json() == original.json()


def test_reused_key_while_pending(client: httpx.Client, uid: str) -> None:
    assert start(client, "slow", {"args": [0.5, "a"]}, id=uid).status_code == 202
    assert_problem(
        start(client, "slow", {"args": [0.5, "b"]}, id=uid), 422, "idempotency-key-reused"
    )
    assert status(client, uid, wait=10).json()["result"] == "a"


def test_idempotency_key_header_wins_over_query(client: httpx.Client, uid: str) -> None:
    response = start(client, "ping", id="other-" + uid, headers={"Idempotency-Key": uid}, wait=5)
    assert response.json()["id"] == uid
    assert status(client, "other-" + uid).status_code == 404


def test_idempotency_key_as_structured_field_string(client: httpx.Client, uid: str) -> None:
    response = start(client, "ping", headers={"Idempotency-Key": f'"{uid}"'}, wait=5)
    assert response.json()["id"] == uid


@pytest.mark.parametrize(
    "key", ['"unterminated', '"a"b"', "a b", "-lead", "a..b", "x" * 257, "a:b", '"bad\\q"']
)
def test_malformed_idempotency_key(client: httpx.Client, key: str) -> None:
    assert_problem(start(client, "ping", headers={"Idempotency-Key": key}), 400, "invalid-id")


@pytest.mark.parametrize("bad", ["", "-x", ".x", "a..b", "a:1", "a b", "é", "x" * 257, "a%2Fb"])
def test_invalid_ids(client: httpx.Client, bad: str) -> None:
    assert_problem(start(client, "ping", id=bad), 400, "invalid-id")


def test_longest_valid_id(client: httpx.Client) -> None:
    long_id = "a" + "b" * 255
    assert start(client, "ping", id=long_id, wait=5).json()["id"] == long_id


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"args": [1, 2],}',
        b'{"args": [NaN, 1]}',
        b'{"args": [Infinity, 1]}',
        b'{"args": [-Infinity, 1]}',
        b'{"args": [1e999, 1]}',
        b'{"args": [1], "args": [2]}',
        b"[1, 2]",
        b'"args"',
        b"null",
        b'{"args": {"a": 1}}',
        b'{"kwargs": [1]}',
        b'{"argz": []}',
        b'{"args": ["\xff\xfe"]}',
        b'{"args": [' + b"[" * 70 + b"]" * 70 + b"]}",
        b'{"args": [' + b"[" * 100000 + b"]" * 100000 + b"]}",
    ],
)
def test_invalid_json(client: httpx.Client, raw: bytes) -> None:
    response = client.post(f"{P}/functions/add", content=raw, headers=JSON_HEADERS)
    assert_problem(response, 400, "invalid-json")


def test_nesting_within_the_limit_is_fine(client: httpx.Client) -> None:
    nested = "[" * 60 + "]" * 60
    response = client.post(
        f"{P}/functions/remote_raw", content=f'{{"args": [{nested}]}}', headers=JSON_HEADERS
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_body_that_is_not_json_is_415(client: httpx.Client, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(f"{P}/functions/add", content=b'{"args": [1, 2]}', headers=headers)
    assert_problem(response, 415, "unsupported-media-type")


def test_plus_json_media_types_are_json(client: httpx.Client) -> None:
    response = client.post(
        f"{P}/functions/add",
        params={"wait": "5"},
        content=b'{"args": [1, 2]}',
        headers={"content-type": "application/vnd.example+json; charset=utf-8"},
    )
    assert response.status_code == 200 and response.json()["result"] == 3


def test_oversized_body_is_413(client: httpx.Client) -> None:
    body = json.dumps({"args": ["x" * (1024 * 1024), "y"]}).encode()
    response = client.post(f"{P}/functions/slow", content=body, headers=JSON_HEADERS)
    assert_problem(response, 413, "payload-too-large")


@pytest.mark.parametrize(
    "body",
    [
        {"args": [1]},
        {"args": [1, 2, 3]},
        {"args": [1, "2"]},
        {"args": [True, 2]},
        {"args": [1.5, 2]},
        {"args": [None, 2]},
        {"kwargs": {"a": 1, "c": 2}},
        {"args": [1], "kwargs": {"a": 1, "b": 2}},
    ],
)
def test_arguments_that_do_not_bind_are_422(client: httpx.Client, body: dict[str, object]) -> None:
    assert_problem(start(client, "add", body), 422, "invalid-arguments")


def test_type_errors_name_the_parameter(client: httpx.Client) -> None:
    body = assert_problem(start(client, "add", {"args": [1, "x"]}), 422, "invalid-arguments")
    assert body["errors"][0]["loc"] == ["b"]


def test_dispatch_signature_validates_too(client: httpx.Client) -> None:
    assert_problem(start(client, "remote_add", {"args": [1, "x"]}), 422, "invalid-arguments")
    response = start(client, "remote_add", {"args": [1, 2]})
    assert response.status_code == 202
    assert response.json()["status"] == "pending"


def test_dispatch_without_signature_passes_arguments_as_sent(
    client: httpx.Client, uid: str
) -> None:
    first = start(client, "remote_raw", {"args": [1, {"x": [2]}]}, id=uid)
    assert first.status_code == 202
    assert start(client, "remote_raw", {"args": [1, {"x": [2]}]}, id=uid).status_code == 202
    assert_problem(
        start(client, "remote_raw", {"args": [1]}, id=uid), 422, "idempotency-key-reused"
    )


@pytest.mark.parametrize("wait", ["-1", "nan", "inf", "-inf", "abc", "", "1e400", " 1", "0x10"])
def test_invalid_wait(client: httpx.Client, wait: str) -> None:
    response = client.post(f"{P}/functions/ping", params={"wait": wait})
    assert_problem(response, 400, "invalid-wait")


def test_wait_is_clamped_to_the_cap(adapter: str, uid: str) -> None:
    """A pending invocation and a wait far over a small cap: answered once the cap runs out."""
    with ADAPTERS[adapter](wait_cap=0.5) as client:
        response = start(client, "slow", {"args": [60, "late"]}, id=uid, wait=1e9)
        assert response.status_code == 202
        assert response.json()["status"] == "pending"
        assert status(client, uid, wait=1e9).json()["status"] == "pending"


def test_bad_input_leaves_nothing_behind(client: httpx.Client, uid: str) -> None:
    assert_problem(start(client, "add", {"args": [1, "x"]}, id=uid), 422, "invalid-arguments")
    assert_problem(status(client, uid), 404, "not-found")
