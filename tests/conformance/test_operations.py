"""Tags, rerun, bulk actions and statistics (contract v3), on every adapter."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conformance.helpers import JSON_HEADERS, P, assert_problem, start, status, validated


def _ids(page: dict[str, Any]) -> list[str]:
    return [str(doc["id"]) for doc in page["invocations"]]


def _post(client: httpx.Client, path: str, params: Any = None) -> Any:
    return client.post(f"{P}{path}", params=params)


# ── tags ─────────────────────────────────────────────────────────────────────


def test_tags_are_kept_shown_and_filter_the_list(client: httpx.Client, uid: str) -> None:
    customer = f"c-{uid}"
    first = start(
        client, "add", {"args": [1, 2], "tags": {"customer": customer, "order": "o-1"}}, id=uid
    )
    assert first.status_code in (200, 202)
    assert first.json()["tags"] == {"customer": customer, "order": "o-1"}
    start(client, "add", {"args": [3, 4], "tags": {"customer": customer}}, id=f"{uid}-2", wait=10)
    start(client, "add", {"args": [5, 6]}, id=f"{uid}-3", wait=10)
    settled = status(client, uid, wait=10).json()
    assert settled["status"] == "resolved"
    assert settled["tags"] == {"customer": customer, "order": "o-1"}
    assert status(client, f"{uid}-3").json()["tags"] == {}

    def listed(*tags: str, **filters: str) -> list[str]:
        params: dict[str, Any] = {"limit": "100", **filters, "tag": list(tags)}
        page = client.get(f"{P}/invocations", params=params)
        assert page.status_code == 200, page.text
        for doc in page.json()["invocations"]:
            validated(doc)
        return _ids(page.json())

    assert listed(f"customer:{customer}") == [f"{uid}-2", uid]  # newest first
    assert listed(f"customer:{customer}", "order:o-1") == [uid]  # every tag must match
    assert listed(f"customer:{customer}", function="add") == [f"{uid}-2", uid]
    assert listed(f"customer:{customer}", function="slow") == []
    assert listed(f"customer:{customer}", status="pending") == []
    assert listed(f"customer:nobody-{uid}") == []
    assert_problem(client.get(f"{P}/invocations", params={"tag": "no-colon"}), 400, "invalid-query")
    twice = {"tag": [f"customer:{customer}", "customer:other"]}
    assert_problem(client.get(f"{P}/invocations", params=twice), 400, "invalid-query")
    assert_problem(client.get(f"{P}/invocations", params={"tag": "Upper:x"}), 400, "invalid-query")


@pytest.mark.parametrize(
    "tags",
    [
        ["a"],
        "text",
        {"Customer": "x"},
        {"": "x"},
        {"k" * 65: "x"},
        {"resonate-owner": "x"},
        {"has space": "x"},
        {"k": 7},
        {"k": None},
        {"k": "v" * 257},
        {f"k{n}": "v" for n in range(17)},
    ],
)
def test_invalid_tags_are_400(client: httpx.Client, uid: str, tags: Any) -> None:
    response = start(client, "add", {"args": [1, 2], "tags": tags}, id=uid)
    assert_problem(response, 400, "invalid-tags")
    assert_problem(client.get(f"{P}/invocations/{uid}"), 404, "not-found")  # nothing started


def test_the_limits_of_tags_are_allowed(client: httpx.Client, uid: str) -> None:
    tags = {f"k{n}": "v" * 256 for n in range(15)} | {"a.b_c-" + "d" * 57: ""}
    response = start(client, "add", {"args": [1, 2], "tags": tags}, id=uid, wait=10)
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == tags


def test_tags_are_part_of_the_call_for_idempotency(client: httpx.Client, uid: str) -> None:
    body = {"args": [1, 2], "tags": {"customer": "c-1"}}
    assert start(client, "add", body, id=uid, wait=10).status_code == 200
    again = start(client, "add", {"kwargs": {"a": 1, "b": 2}, "tags": {"customer": "c-1"}}, id=uid)
    assert again.status_code == 200 and again.json()["tags"] == {"customer": "c-1"}
    other = {"args": [1, 2], "tags": {"customer": "c-2"}}
    assert_problem(start(client, "add", other, id=uid), 422, "idempotency-key-reused")
    assert_problem(start(client, "add", {"args": [1, 2]}, id=uid), 422, "idempotency-key-reused")
    assert status(client, uid).json()["tags"] == {"customer": "c-1"}


# ── rerun ────────────────────────────────────────────────────────────────────


def test_rerun_starts_the_same_call_again(client: httpx.Client, uid: str) -> None:
    body = {"args": [f"no {uid}"], "tags": {"batch": uid}}
    assert start(client, "fail", body, id=uid, wait=10).json()["status"] == "rejected"
    rerun = _post(client, f"/invocations/{uid}/rerun", {"id": f"{uid}-again"})
    assert rerun.status_code == 201, rerun.text
    doc = validated(rerun.json())
    assert doc["id"] == f"{uid}-again" and doc["rerun_of"] == uid
    assert doc["function"] == "fail" and doc["tags"] == {"batch": uid}
    assert rerun.headers["location"] == f"{P}/invocations/{uid}-again"
    settled = status(client, f"{uid}-again", wait=10).json()
    assert settled["status"] == "rejected" and settled["error"]["message"] == f"no {uid}"
    assert settled["rerun_of"] == uid
    old = status(client, uid).json()
    assert old["status"] == "rejected" and "rerun_of" not in old  # untouched
    # Without an id: a new one; with the Idempotency-Key header: that one.
    fresh = _post(client, f"/invocations/{uid}/rerun")
    assert fresh.status_code == 201 and fresh.json()["id"] not in (uid, f"{uid}-again")
    keyed = client.post(f"{P}/invocations/{uid}/rerun", headers={"idempotency-key": f"{uid}-keyed"})
    assert keyed.status_code == 201 and keyed.json()["id"] == f"{uid}-keyed"


def test_rerun_of_a_resolved_invocation_runs_its_arguments(client: httpx.Client, uid: str) -> None:
    start(client, "add", {"kwargs": {"a": 20, "b": 22}}, id=uid, wait=10)
    rerun = _post(client, f"/invocations/{uid}/rerun", {"id": f"{uid}-2"})
    assert rerun.status_code == 201, rerun.text
    assert status(client, f"{uid}-2", wait=10).json()["result"] == 42


def test_rerun_while_pending_is_409_and_unknown_is_404(client: httpx.Client, uid: str) -> None:
    start(client, "slow", {"args": [30, "x"]}, id=uid)
    assert_problem(_post(client, f"/invocations/{uid}/rerun"), 409, "conflict")
    assert status(client, uid).json()["status"] == "pending"
    assert_problem(_post(client, f"/invocations/nobody-{uuid.uuid4().hex}/rerun"), 404, "not-found")
    assert_problem(_post(client, f"/invocations/{uid}/rerun", {"id": "a..b"}), 400, "invalid-id")
    client.post(f"{P}/invocations/{uid}/cancel")


# ── bulk ─────────────────────────────────────────────────────────────────────


def test_bulk_cancel_acts_on_what_the_filter_finds(client: httpx.Client, uid: str) -> None:
    tag = f"batch:{uid}"
    pending = [f"{uid}-p{n}" for n in range(3)]
    for key in pending:
        start(client, "slow", {"args": [30, "x"], "tags": {"batch": uid}}, id=key)
    start(client, "add", {"args": [1, 1], "tags": {"batch": uid}}, id=f"{uid}-done", wait=10)
    start(client, "slow", {"args": [30, "x"]}, id=f"{uid}-other")  # not tagged
    first = _post(client, "/invocations/cancel", {"tag": tag, "limit": "2"})
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["matched"] == 2 and page["next"]
    seen = set(page["done"]) | {s["id"] for s in page["skipped"]}
    assert len(seen) == 2
    rest = _post(client, "/invocations/cancel", {"tag": tag, "limit": "2", "cursor": page["next"]})
    assert rest.status_code == 200, rest.text
    later = rest.json()
    assert later["matched"] == 2
    assert not seen & (set(later["done"]) | {s["id"] for s in later["skipped"]})
    assert sorted(page["done"] + later["done"]) == sorted(pending)  # each once
    (skipped,) = page["skipped"] + later["skipped"]
    assert skipped["id"] == f"{uid}-done" and skipped["reason"].startswith("conflict")
    if later["next"]:  # a cursor may end on a full page: the next one is empty
        empty = _post(
            client, "/invocations/cancel", {"tag": tag, "limit": "2", "cursor": later["next"]}
        )
        assert empty.json()["matched"] == 0
    for key in pending:
        assert status(client, key).json()["status"] == "canceled"
    assert status(client, f"{uid}-other").json()["status"] == "pending"
    assert status(client, f"{uid}-done").json()["status"] == "resolved"
    # Again: already canceled is done again (the single route answers 200).
    again = _post(client, "/invocations/cancel", {"tag": tag, "status": "canceled"}).json()
    assert sorted(again["done"]) == sorted(pending) and again["skipped"] == []
    client.post(f"{P}/invocations/{uid}-other/cancel")


def test_bulk_rerun_skips_the_pending(client: httpx.Client, uid: str) -> None:
    tag = f"batch:{uid}"
    start(client, "fail", {"args": ["boom"], "tags": {"batch": uid}}, id=f"{uid}-f", wait=10)
    start(client, "slow", {"args": [30, "x"], "tags": {"batch": uid}}, id=f"{uid}-s")
    answer = _post(client, "/invocations/rerun", {"tag": tag}).json()
    assert answer["matched"] == 2
    assert [s["id"] for s in answer["skipped"]] == [f"{uid}-s"]
    assert answer["skipped"][0]["reason"].startswith("conflict")
    assert len(answer["done"]) == 1 and answer["done"][0] == f"{uid}-f"
    reruns = client.get(
        f"{P}/invocations", params={"tag": tag, "function": "fail", "limit": "100"}
    ).json()["invocations"]
    assert [d.get("rerun_of") for d in reruns] == [f"{uid}-f", None]
    client.post(f"{P}/invocations/{uid}-s/cancel")


def test_bulk_needs_a_filter_and_a_valid_limit(client: httpx.Client) -> None:
    for action in ("cancel", "rerun"):
        assert_problem(_post(client, f"/invocations/{action}"), 400, "invalid-query")
        assert_problem(
            _post(client, f"/invocations/{action}", {"limit": "5"}), 400, "invalid-query"
        )
        for limit in ("0", "1001", "x"):
            assert_problem(
                _post(client, f"/invocations/{action}", {"function": "add", "limit": limit}),
                400,
                "invalid-query",
            )
        assert_problem(
            _post(client, f"/invocations/{action}", {"function": "nope"}), 400, "invalid-query"
        )


# ── statistics ───────────────────────────────────────────────────────────────


def test_stats_count_a_function_over_its_window(client: httpx.Client, uid: str) -> None:
    for n in range(3):
        start(client, "fail", {"args": [f"{uid}-{n}"]}, id=f"{uid}-f{n}", wait=10)
    before = client.get(f"{P}/functions/count/stats")
    assert before.status_code == 200, before.text
    base = before.json()
    for n in range(4):
        start(client, "count", {"args": [f"{uid}-{n}"]}, id=f"{uid}-c{n}", wait=10)
    start(client, "fail", {"args": ["x"]}, id=f"{uid}-fx", wait=10)
    response = client.get(f"{P}/functions/count/stats", params={"window": "600"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["function"] == "count" and body["window"] == 600
    assert set(body["counts"]) == {"pending", "resolved", "rejected", "canceled", "timedout"}
    assert body["counts"]["resolved"] >= base["counts"]["resolved"] + 4
    assert body["counts"]["rejected"] == 0 and body["failure_rate"] == 0
    durations = body["duration_ms"]
    assert 0 <= durations["p50"] <= durations["p95"] <= durations["max"]
    failing = client.get(f"{P}/functions/fail/stats").json()
    assert failing["counts"]["rejected"] >= 4 and failing["failure_rate"] > 0
    # Every settled one failed, unless another test sharing the app canceled one.
    assert failing["counts"]["resolved"] == 0
    settled = sum(failing["counts"][k] for k in ("resolved", "rejected", "canceled", "timedout"))
    failed = failing["counts"]["rejected"] + failing["counts"]["timedout"]
    assert failing["failure_rate"] == pytest.approx(failed / settled, abs=1e-3)
    assert client.get(f"{P}/functions/count/stats").json()["window"] == 3600


def test_stats_buckets_count_starts_and_failures_over_the_window(
    client: httpx.Client, uid: str
) -> None:
    """``buckets``: the window in 30 intervals, oldest first; what just started is in
    the intervals since they started, and the buckets add up to the counts (the same
    search)."""
    began = datetime.now(UTC)
    for n in range(2):
        start(client, "book_trip", {"args": [f"{uid}-{n}", "car"]}, id=f"{uid}-r{n}", wait=15)
    start(client, "book_trip", {"args": [uid]}, id=f"{uid}-ok", wait=15)
    body = client.get(f"{P}/functions/book_trip/stats", params={"window": "600"}).json()
    buckets = body["buckets"]
    assert len(buckets) == 30
    starts = [datetime.fromisoformat(b["start"]) for b in buckets]
    assert starts == sorted(starts)
    steps = {b - a for a, b in itertools.pairwise(starts)}
    assert steps == {timedelta(seconds=20)}  # 600 s / 30
    assert sum(b["started"] for b in buckets) == sum(body["counts"].values())
    failed = body["counts"]["rejected"] + body["counts"]["timedout"]
    assert sum(b["failed"] for b in buckets) == failed
    interval = timedelta(seconds=20)
    recent = [b for b in buckets if datetime.fromisoformat(b["start"]) + interval > began]
    assert sum(b["started"] for b in recent) >= 3 and sum(b["failed"] for b in recent) >= 2
    assert all(0 <= b["failed"] <= b["started"] for b in buckets)
    quiet = client.get(f"{P}/functions/wide/stats", params={"window": "1"}).json()
    assert len(quiet["buckets"]) == 30
    if sum(quiet["counts"].values()) == 0:
        assert [(b["started"], b["failed"]) for b in quiet["buckets"]] == [(0, 0)] * 30


def test_stats_of_a_function_without_invocations(client: httpx.Client) -> None:
    body = client.get(f"{P}/functions/wide/stats", params={"window": "1"}).json()
    if sum(body["counts"].values()) == 0:
        assert body["duration_ms"] is None and body["failure_rate"] is None


def test_stats_errors(client: httpx.Client) -> None:
    assert_problem(client.get(f"{P}/functions/nope/stats"), 404, "unknown-function")
    for window in ("0", "-1", "x", str(30 * 24 * 3600 + 1), "1.5"):
        assert_problem(
            client.get(f"{P}/functions/add/stats", params={"window": window}),
            400,
            "invalid-query",
        )
    assert_problem(
        client.get(f"{P}/functions/add/stats", params={"other": "1"}), 400, "invalid-query"
    )


def test_new_routes_answer_json_bodies(client: httpx.Client, uid: str) -> None:
    # The bulk routes take no body; one is ignored the way POST /cancel ignores it.
    response = client.post(
        f"{P}/invocations/cancel",
        params={"function": "slow", "tag": f"batch:{uid}"},
        content=json.dumps({}).encode(),
        headers=JSON_HEADERS,
    )
    assert response.status_code == 200 and response.json() == {
        "matched": 0,
        "done": [],
        "skipped": [],
        "next": None,
    }
