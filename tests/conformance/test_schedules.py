"""Schedules: POST, GET and DELETE /schedules, every error, and ticks that fire.

The test apps accept a sixth cron field, seconds (``tests.support.functions``),
so a schedule ticks within seconds here; users' apps never do.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conformance.helpers import JSON_HEADERS, P, assert_problem, status, validated
from tests.support.adapters import ADAPTERS, PG_ADAPTERS

YEARLY = "0 0 1 1 *"
TICK_ID = re.compile(r"^(?P<schedule>.+)-(?P<ms>\d{13})$")


def create(client: httpx.Client, body: Any, *, raw: bytes | None = None) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return client.post(f"{P}/schedules", content=content, headers=JSON_HEADERS)


def get(client: httpx.Client, id: str) -> httpx.Response:
    return client.get(f"{P}/schedules/{id}")


def delete(client: httpx.Client, id: str) -> httpx.Response:
    return client.delete(f"{P}/schedules/{id}")


def schedule(id: str, cron: str = YEARLY, function: str = "add", **more: Any) -> dict[str, Any]:
    return {"id": id, "cron": cron, "function": function, "args": [2, 3], **more}


def checked_schedule(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` after checking the shape of a schedule document."""
    assert set(doc) == {
        "id",
        "cron",
        "function",
        "args",
        "kwargs",
        "timeout",
        "next_runs",
        "links",
        "recent",
    }, doc
    assert doc["links"] == {"self": f"{P}/schedules/{doc['id']}"}
    assert len(doc["next_runs"]) == 5
    times = [datetime.fromisoformat(t) for t in doc["next_runs"]]
    # Upcoming when the server answered (a cron of seconds may pass it by the time
    # this runs), and never in the past by more than that answer took to arrive.
    assert times == sorted(set(times)) and times[0] > datetime.now(UTC) - timedelta(seconds=30)
    for tick in doc["recent"]:
        validated(tick)
    return doc


def test_create_read_list_and_delete(client: httpx.Client, uid: str) -> None:
    created = create(client, schedule(uid, "30 12 * * *"))
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{P}/schedules/{uid}"
    doc = checked_schedule(created.json())
    assert (doc["id"], doc["cron"], doc["function"]) == (uid, "30 12 * * *", "add")
    assert (doc["args"], doc["kwargs"], doc["recent"]) == ([2, 3], {}, [])
    assert all(t.endswith("T12:30:00.000Z") for t in doc["next_runs"])
    assert doc["timeout"] == 86400  # the SDK's default for a root invocation: one day

    read = get(client, uid)
    assert read.status_code == 200
    assert checked_schedule(read.json()) == {**doc, "next_runs": read.json()["next_runs"]}

    listed = client.get(f"{P}/schedules")
    assert listed.status_code == 200
    mine = [s for s in listed.json()["schedules"] if s["id"] == uid]
    assert mine == [{k: v for k, v in read.json().items() if k != "recent"}]

    gone = delete(client, uid)
    assert gone.status_code == 204 and gone.content == b""
    assert_problem(get(client, uid), 404, "not-found")
    assert_problem(delete(client, uid), 404, "not-found")
    assert uid not in {s["id"] for s in client.get(f"{P}/schedules").json()["schedules"]}


def test_the_same_definition_again_is_200(client: httpx.Client, uid: str) -> None:
    assert create(client, schedule(uid, " 0  0 1 1 * ")).status_code == 201
    # The same call spelled by keyword, the same cron spaced otherwise: the same schedule.
    again = create(client, {**schedule(uid), "args": [], "kwargs": {"a": 2, "b": 3}})
    assert again.status_code == 200, again.text
    assert "location" not in again.headers
    assert checked_schedule(again.json())["args"] == [2, 3]
    delete(client, uid)


@pytest.mark.parametrize(
    "change",
    [
        {"cron": "0 0 2 1 *"},
        {"args": [2, 4]},
        {"function": "ping", "args": []},
        {"timeout": 60},
    ],
)
def test_another_definition_under_the_same_id_is_409(
    client: httpx.Client, uid: str, change: dict[str, Any]
) -> None:
    original = create(client, schedule(uid)).json()
    body = assert_problem(create(client, {**schedule(uid), **change}), 409, "conflict")
    assert uid in body["detail"]
    after = get(client, uid).json()
    assert {k: after[k] for k in ("cron", "function", "args", "timeout")} == {
        k: original[k] for k in ("cron", "function", "args", "timeout")
    }
    delete(client, uid)


@pytest.mark.parametrize(
    "cron",
    # One of each kind; every refusal is in tests/core/test_schedules.py.
    ["* * * *", "61 * * * *", "0 0 * * MON", "@hourly", "*/0 * * * *", 7],
)
def test_an_invalid_cron_is_400_and_stores_nothing(
    client: httpx.Client, uid: str, cron: Any
) -> None:
    body = assert_problem(create(client, schedule(uid, cron)), 400, "invalid-cron")
    assert "cron" in body["detail"]
    assert_problem(get(client, uid), 404, "not-found")


def test_an_unknown_function_is_404(client: httpx.Client, uid: str) -> None:
    assert_problem(create(client, schedule(uid, function="nobody")), 404, "unknown-function")
    assert_problem(get(client, uid), 404, "not-found")


@pytest.mark.parametrize(
    "arguments",
    [
        {"args": [1]},
        {"args": [1, "two"]},
        {"args": [1, 2, 3]},
        {"args": [], "kwargs": {"a": 1, "c": 2}},
    ],
)
def test_arguments_that_do_not_bind_are_422(
    client: httpx.Client, uid: str, arguments: dict[str, Any]
) -> None:
    body = {"id": uid, "cron": YEARLY, "function": "add", **arguments}
    assert_problem(create(client, body), 422, "invalid-arguments")
    assert_problem(get(client, uid), 404, "not-found")


@pytest.mark.parametrize("id", ["", "a..b", "a:b", "x" * 243, None])
def test_an_invalid_id_is_400(client: httpx.Client, id: Any) -> None:
    assert_problem(create(client, schedule(id)), 400, "invalid-id")


def test_the_longest_id_leaves_room_for_the_tick_time(client: httpx.Client, uid: str) -> None:
    id = uid + "x" * (242 - len(uid))
    assert create(client, schedule(id)).status_code == 201
    assert delete(client, id).status_code == 204


@pytest.mark.parametrize(
    ("raw", "headers", "code", "slug"),
    [
        (b"{", JSON_HEADERS, 400, "invalid-json"),
        (b"[]", JSON_HEADERS, 400, "invalid-json"),
        (b'{"id":"a","id":"b"}', JSON_HEADERS, 400, "invalid-json"),
        (
            b'{"id":"x","cron":"0 * * * *","function":"ping","every":1}',
            JSON_HEADERS,
            400,
            "invalid-json",
        ),
        (
            b'{"id":"x","cron":"0 * * * *","function":"add","args":{}}',
            JSON_HEADERS,
            400,
            "invalid-json",
        ),
        (
            b'{"id":"x","cron":"0 * * * *","function":"add","kwargs":[]}',
            JSON_HEADERS,
            400,
            "invalid-json",
        ),
        (
            b'{"id":"x","cron":"0 * * * *","function":"ping","timeout":0}',
            JSON_HEADERS,
            400,
            "invalid-json",
        ),
        (
            b'{"id":"x","cron":"0 * * * *","function":"ping","timeout":"1"}',
            JSON_HEADERS,
            400,
            "invalid-json",
        ),
        (b'{"id":"x","cron":"0 * * * *","function":7}', JSON_HEADERS, 400, "invalid-json"),
        (b'{"id":"x","cron":"0 * * * *"}', JSON_HEADERS, 400, "invalid-json"),
        (b"", JSON_HEADERS, 400, "invalid-id"),
        (b'{"id":"x"}', {"content-type": "text/plain"}, 415, "unsupported-media-type"),
    ],
)
def test_a_malformed_body_is_a_4xx(
    client: httpx.Client, raw: bytes, headers: dict[str, str], code: int, slug: str
) -> None:
    response = client.post(f"{P}/schedules", content=raw, headers=headers)
    assert_problem(response, code, slug)


def test_a_body_over_the_limit_is_413(client: httpx.Client) -> None:
    raw = b'{"id":"' + b"x" * (1 << 21) + b'"}'
    assert_problem(create(client, None, raw=raw), 413, "payload-too-large")


def test_invalid_ids_in_the_path_are_400(client: httpx.Client) -> None:
    assert_problem(get(client, "a..b"), 400, "invalid-id")
    assert_problem(delete(client, "a..b"), 400, "invalid-id")


def test_timeouts(client: httpx.Client, uid: str) -> None:
    explicit = create(client, schedule(uid, timeout=90))
    assert explicit.json()["timeout"] == 90
    # Without one, the function's own timeout.
    body = {"id": uid + "-own", "cron": YEARLY, "function": "slow_timeout", "args": [1, "x"]}
    assert create(client, body).json()["timeout"] == 1
    delete(client, uid)
    delete(client, uid + "-own")


def wait_ticks(client: httpx.Client, id: str, count: int, timeout: float = 60) -> list[Any]:
    """The schedule's settled ticks once ``count`` have settled, newest first."""
    deadline = time.monotonic() + timeout
    recent: list[Any] = []
    while time.monotonic() < deadline:
        recent = checked_schedule(get(client, id).json())["recent"]
        settled = [t for t in recent if t["status"] != "pending"]
        if len(settled) >= count:
            return settled
        time.sleep(0.2)
    raise AssertionError(f"{id}: fewer than {count} settled ticks in {timeout}s: {recent}")


@pytest.fixture(params=[a for a in sorted(ADAPTERS) if a not in PG_ADAPTERS])
def ticking(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """Every adapter whose backend resonate-web fires ticks for (every second, in the
    test apps). Postgres fires its own, a minute apart: tests/core/test_postgres_schedules.py."""
    with ADAPTERS[str(request.param)]() as client:
        yield client


def test_ticks_fire_and_every_tick_resolves(ticking: httpx.Client, uid: str) -> None:
    client = ticking
    assert create(client, schedule(uid, "* * * * * *")).status_code == 201
    try:
        ticks = wait_ticks(client, uid, 2)
    finally:
        delete(client, uid)
    times = []
    for tick in ticks:
        match = TICK_ID.match(tick["id"])
        assert match and match["schedule"] == uid, tick
        assert int(match["ms"]) % 1000 == 0  # a cron time: a whole second
        times.append(int(match["ms"]))
        assert (tick["function"], tick["status"], tick["result"]) == ("add", "resolved", 5)
        # A tick is an invocation like any other.
        assert status(client, tick["id"]).json() == tick
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)


def test_a_failing_tick_rejects_and_the_next_one_fires(ticking: httpx.Client, uid: str) -> None:
    client = ticking
    body = {"id": uid, "cron": "* * * * * *", "function": "fail", "args": ["tick"]}
    assert create(client, body).status_code == 201
    try:
        ticks = wait_ticks(client, uid, 2)
    finally:
        delete(client, uid)
    for tick in ticks:
        assert tick["status"] == "rejected"
        assert tick["error"] == {"type": "ValueError", "message": "tick"}


@pytest.fixture
def on_postgres(pg_dsn: str) -> Iterator[httpx.Client]:
    """The app on Postgres, whose database creates the ticks itself."""
    with ADAPTERS["fastapi-pg"](url=pg_dsn) as client:
        yield client


def test_a_tick_postgres_creates_is_listed_and_counted_by_function(
    on_postgres: httpx.Client, pg_dsn: str, uid: str
) -> None:
    """resonate-pg creates a tick from the schedule's stored tags alone: they carry the
    function's, so the tick is found by the searches by function (no scan)."""
    import psycopg

    client = on_postgres
    body = {"id": uid, "cron": YEARLY, "function": "ping", "args": []}
    assert create(client, body).status_code == 201
    before = client.get(f"{P}/functions/ping/stats", params={"window": "600"}).json()
    # Due now: the database's timer pass (driven by the app's connection) fires it.
    at = int(time.time()) * 1000
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE resonate.schedules SET next_run_at = %s WHERE id = %s", (at, uid))
    ticks: list[Any] = []
    try:
        while not ticks or ticks[0]["status"] == "pending":  # the test's timeout bounds it
            time.sleep(0.2)
            ticks = client.get(f"{P}/invocations", params={"schedule": uid}).json()["invocations"]
    finally:
        delete(client, uid)
    (tick,) = ticks
    assert tick["id"] == f"{uid}-{at}"
    assert (tick["function"], tick["status"], tick["result"]) == ("ping", "resolved", "pong")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT tags FROM resonate.promises WHERE id = %s", (tick["id"],))
        (tags,) = row.fetchone() or (None,)
    assert tags["resonate-web:function"] == "ping" and tags["resonate:schedule"] == uid
    listed = client.get(f"{P}/invocations", params={"function": "ping", "limit": "100"}).json()
    assert tick["id"] in [doc["id"] for doc in listed["invocations"]]
    after = client.get(f"{P}/functions/ping/stats", params={"window": "600"}).json()
    assert after["counts"]["resolved"] >= before["counts"]["resolved"] + 1
