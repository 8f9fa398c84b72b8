"""Schedules in process: cron rules, the ticker's rules for due and missed ticks
(on a test clock), declarative schedules, and the client's schedule calls."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from resonate.context import Context
from resonate.types import Value

from resonate_web import Functions, Problem, Settings
from resonate_web._core import cron, invocations, schedules
from resonate_web._core import sdk as _sdk
from resonate_web._core.cron import validate_cron
from resonate_web._core.runtime import Portal, Runtime
from resonate_web._core.schedules import Ticker
from resonate_web._devserver import DevServer
from resonate_web._inprocess import AsyncClient, SyncClient
from tests.support.functions import build

MINUTE = 60_000
#: 2026-01-01T00:00:00Z
T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)


def uid() -> str:
    return "s-" + uuid.uuid4().hex[:10]


@pytest.fixture
def five_fields() -> Iterator[None]:
    """Cron as users have it: the tests' sixth (seconds) field off."""
    previous = cron._second_crons
    cron._allow_seconds(False)
    yield
    cron._allow_seconds(previous)


# ── cron ──────────────────────────────────────────────────────────────────


@pytest.mark.usefixtures("five_fields")
@pytest.mark.parametrize(
    ("cron", "normalized"),
    [
        ("0 * * * *", "0 * * * *"),
        ("  */15  9-17 * * 1-5 ", "*/15 9-17 * * 1-5"),
        ("0,30 0 1,15 1-12/3 0", "0,30 0 1,15 1-12/3 0"),
        ("59 23 31 12 6", "59 23 31 12 6"),
    ],
)
def test_valid_crons_are_normalized(cron: str, normalized: str) -> None:
    assert validate_cron(cron) == normalized


@pytest.mark.usefixtures("five_fields")
@pytest.mark.parametrize(
    "cron",
    [
        "* * * *",
        "* * * * * *",  # seconds: only in this project's tests
        "60 * * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 32 * *",
        "0 0 * 0 *",
        "0 0 * 13 *",
        "0 0 * * 7",  # croniter's Sunday, not resonate-pg's
        "0 0 * * MON",
        "0 0 * JAN *",
        "0 0 L * *",
        "0 0 * * 1#2",
        "0 0 ? * *",
        "H * * * *",
        "@hourly",
        "*/0 * * * *",
        "5-1 * * * *",
        "1- * * * *",
        ",1 * * * *",
        "",
        7,
        None,
    ],
)
def test_what_is_refused(cron: Any) -> None:
    with pytest.raises(Problem) as refused:
        validate_cron(cron)
    assert refused.value.slug == "invalid-cron" and refused.value.status == 400


def test_next_and_previous_runs_are_utc() -> None:
    runs = cron.next_runs("30 12 * * *", T0)
    assert [invocations.iso(r) for r in runs] == [
        f"2026-01-0{day}T12:30:00.000Z" for day in range(1, 6)
    ]
    assert cron.next_after("0 * * * *", T0) == T0 + 60 * MINUTE  # strictly after
    assert cron.previous_runs("0 * * * *", T0 + 150 * MINUTE, T0 - 1) == [
        T0 + 120 * MINUTE,
        T0 + 60 * MINUTE,
        T0,
    ]
    assert cron.previous_runs("0 * * * *", T0 + 150 * MINUTE, T0) == [
        T0 + 120 * MINUTE,
        T0 + 60 * MINUTE,
    ]
    assert len(cron.previous_runs("* * * * *", T0 + 600 * MINUTE, 0)) == cron.RECENT


# ── the ticker: which ticks are due ───────────────────────────────────────


class Stub(msgspec.Struct):
    id: str
    cron: str
    promise_id: str = schedules.TICK_TEMPLATE
    promise_timeout: int = 2 * MINUTE
    promise_param: Any = None
    promise_tags: Any = msgspec.field(default_factory=lambda: {"resonate:target": "poll://any@w"})
    created_at: int = T0 + 10


def test_the_first_tick_is_the_first_cron_time_after_creation() -> None:
    ticker = Ticker()
    stub = Stub("s", "* * * * *")
    assert ticker.due([stub], T0 + MINUTE - 1) == []
    assert ticker.next_due() == T0 + MINUTE
    (tick,) = ticker.due([stub], T0 + MINUTE)
    assert (tick.promise_id, tick.at, tick.timeout_at) == (
        f"s-{T0 + MINUTE}",
        T0 + MINUTE,
        T0 + 3 * MINUTE,
    )
    assert tick.tags == {
        "resonate:target": "poll://any@w",
        "resonate:schedule": "s",
        "resonate:origin": tick.promise_id,
        "resonate:branch": tick.promise_id,
        "resonate:parent": tick.promise_id,
        "resonate:prefix": tick.promise_id,
    }
    assert ticker.due([stub], T0 + MINUTE + 59_999) == []  # once per tick


def test_every_missed_tick_fires_oldest_first() -> None:
    ticker = Ticker()
    stub = Stub("s", "* * * * *")
    ticks = ticker.due([stub], T0 + 5 * MINUTE + 30_000)
    assert [t.at for t in ticks] == [T0 + n * MINUTE for n in range(1, 6)]
    assert ticker.due([stub], T0 + 5 * MINUTE + 30_000) == []


def test_a_deleted_or_recreated_schedule_starts_afresh() -> None:
    ticker = Ticker()
    assert len(ticker.due([Stub("s", "* * * * *")], T0 + 2 * MINUTE)) == 2
    assert ticker.due([], T0 + 3 * MINUTE) == []  # deleted: forgotten
    again = Stub("s", "* * * * *", created_at=T0 + 3 * MINUTE + 1)
    assert [t.at for t in ticker.due([again], T0 + 5 * MINUTE)] == [
        T0 + 4 * MINUTE,
        T0 + 5 * MINUTE,
    ]


def test_a_cron_nobody_can_read_never_fires(caplog: pytest.LogCaptureFixture) -> None:
    ticker = Ticker()
    assert ticker.due([Stub("bad", "every minute"), Stub("ok", "* * * * *")], T0 + MINUTE)
    assert ticker.due([Stub("bad", "every minute")], T0 + 2 * MINUTE) == []
    assert "cannot be evaluated" in caplog.text


# ── the dev server's clock fires ticks in its state machine ───────────────


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _dev_schedule(dev: DevServer, id: str, cron: str, timeout: int) -> None:
    data = {
        "id": id,
        "cron": cron,
        "promiseId": schedules.TICK_TEMPLATE,
        "promiseTimeout": timeout,
        "promiseParam": {"headers": {}, "data": "e30="},
        "promiseTags": {"resonate:target": "poll://any@workers"},
    }
    envelope = {"kind": "schedule.create", "head": {"corrId": "c", "version": "1"}, "data": data}
    status, _ = dev.apply(msgspec.json.encode(envelope))
    assert status == 200


def test_dev_server_ticks_by_the_server_s_rules() -> None:
    clock = Clock(T0 + 10)
    dev = DevServer(clock=clock)
    _dev_schedule(dev, "s", "* * * * *", timeout=2 * MINUTE + 30_000)
    dev.tick()
    assert [p for p in dev.state.promises if p.startswith("s-")] == []
    # Down for five minutes: every missed tick fires, each with its own time; those
    # whose timeout (tick time + 2.5 min) has passed are created timed out.
    clock.now = T0 + 5 * MINUTE + 10_000
    dev.tick()
    ticks = {id: p for id, p in dev.state.promises.items() if id.startswith("s-")}
    assert sorted(ticks) == [f"s-{T0 + n * MINUTE}" for n in range(1, 6)]
    states = [ticks[f"s-{T0 + n * MINUTE}"].state for n in range(1, 6)]
    assert states == ["rejected_timedout"] * 2 + ["pending"] * 3
    late, live = ticks[f"s-{T0 + MINUTE}"], ticks[f"s-{T0 + 5 * MINUTE}"]
    assert late.settled_at == late.timeout_at == T0 + 3 * MINUTE + 30_000
    assert live.timeout_at == T0 + 7 * MINUTE + 30_000
    assert live.tags["resonate:schedule"] == "s"
    assert live.tags["resonate:target"] == "poll://any@workers"
    # Only the pending ticks are work for the group (held until a member connects).
    assert sorted(dev._anycast_backlog["workers"]) == sorted(
        f"s-{T0 + n * MINUTE}" for n in range(3, 6)
    )
    # Once per tick: a tick offered again (a fresh ticker) is the same promise.
    dev.schedules = Ticker()
    dev.tick()
    assert sorted(id for id in dev.state.promises if id.startswith("s-")) == sorted(ticks)


# ── the embedded backend, declarative schedules, the client ───────────────


def heartbeat(ctx: Context) -> str:
    return "beat"


def needs(ctx: Context, who: str) -> str:
    return who


def greet(ctx: Context, who: str = "world") -> str:
    return f"hello {who}"


async def _runtime(functions: Functions) -> Runtime:
    runtime = Runtime(Settings.load(environ={}), functions)
    await runtime.start()
    await asyncio.wait_for(runtime.schedules_declared(), 10)
    return runtime


@pytest.fixture
async def book() -> AsyncIterator[schedules.Schedules]:
    functions = Functions()
    functions.expose(heartbeat, schedule="0 0 1 1 *")
    functions.expose(greet, schedule=["0 6 * * *", "0 18 * * *"])
    runtime = await _runtime(functions)
    yield schedules.Schedules(runtime)
    await runtime.stop()


async def test_declared_schedules_are_created_at_start_up(book: schedules.Schedules) -> None:
    ids = [s.id for s in await book.listing()]
    assert ids == ["greet.1", "greet.2", "heartbeat"]
    stored = await book.read("greet.2")
    assert stored is not None
    assert (stored.cron, stored.function, stored.args, stored.kwargs) == (
        "0 18 * * *",
        "greet",
        ["world"],  # the defaults, bound as any call is
        {},
    )
    # Ticks of an inline function run in the web processes' own group.
    assert stored.target == _sdk.resolve_target(book.runtime.client, "gateway")
    # Declaring again (another process starting) changes nothing.
    await book.declare()
    assert [s.id for s in await book.listing()] == ids


async def test_a_changed_declaration_replaces_the_stored_schedule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    functions = Functions()
    functions.expose(heartbeat, schedule="0 0 1 1 *")
    runtime = await _runtime(functions)
    try:
        book = schedules.Schedules(runtime)
        # The code now says otherwise (as after a deploy): start-up replaces it.
        changed = Functions()
        changed.expose(greet)  # (a revision the runtime has not served yet)
        changed.expose(heartbeat, schedule="30 0 1 1 *")
        runtime.functions = changed
        with caplog.at_level(logging.WARNING, "resonate_web"):
            await book.declare()
        stored = await book.read("heartbeat")
        assert stored is not None and stored.cron == "30 0 1 1 *"
        assert "cron '0 0 1 1 *' -> '30 0 1 1 *'" in caplog.text
        assert "replacing the stored one" in caplog.text
    finally:
        await runtime.stop()


async def test_a_declared_schedule_stored_without_its_function_tag_is_replaced(
    book: schedules.Schedules,
) -> None:
    """A schedule stored before its ticks carried their function's tag (a backend that
    creates ticks itself would copy the old tags): start-up replaces it."""
    stored = await book.read("heartbeat")
    assert stored is not None and stored.tagged
    client = book.runtime.client
    old = await client.schedules.get("heartbeat")
    await client.schedules.delete("heartbeat")
    await client.schedules.create(
        id="heartbeat",
        cron=old.cron,
        promise_id=old.promise_id,
        promise_timeout=old.promise_timeout,
        promise_param=old.promise_param,
        promise_tags={
            schedules.TARGET_TAG: old.promise_tags[schedules.TARGET_TAG],
            schedules.SCHEDULE_TAG: "heartbeat",
        },
    )
    untagged = await book.read("heartbeat")
    assert untagged is not None and not untagged.tagged
    await book.declare()
    replaced = await book.read("heartbeat")
    assert replaced is not None and replaced.tagged and replaced.same(_declared(book))


def _declared(book: schedules.Schedules) -> schedules.Definition:
    return book.define("heartbeat", "0 0 1 1 *", "heartbeat", [], {})


def test_expose_checks_a_schedule_at_once() -> None:
    functions = Functions()
    with pytest.raises(ValueError, match="five fields"):
        functions.expose(heartbeat, schedule="* * * *")
    with pytest.raises(ValueError, match="passes no arguments"):
        functions.expose(needs, schedule="0 * * * *")


def test_declared_ids() -> None:
    assert cron.declarations("f", "0 * * * *") == (("f", "0 * * * *"),)
    assert cron.declarations("f", ["0 * * * *"]) == (("f.1", "0 * * * *"),)
    assert cron.declarations("f", ()) == ()


async def test_ticks_on_the_embedded_backend_fire_and_resolve() -> None:
    functions = Functions()
    functions.expose(greet)
    portal = Portal(Runtime(Settings.load(environ={}), functions), own_loop=False)
    await portal.attach()
    runtime, client = portal.runtime, AsyncClient(portal)
    try:
        id = uid()
        await client.schedule(id, "* * * * * *", "greet", ("ticks",))
        async with asyncio.timeout(30):
            while True:
                doc = await client.schedules.get(id)
                settled = [t for t in doc["recent"] if t["status"] != "pending"]
                if len(settled) >= 2:
                    break
                await asyncio.sleep(0.1)
        assert all(t["result"] == "hello ticks" for t in settled)
        record = await _sdk.read_promise(runtime.client, settled[0]["id"])
        assert record.tags["resonate:schedule"] == id
        await client.unschedule(id)
    finally:
        await portal.detach()


@pytest.fixture
def sync_client() -> Iterator[SyncClient]:
    portal = Portal(Runtime(Settings.load(environ={}), build()))
    yield SyncClient(portal)
    portal.close()


def test_the_client_goes_the_routes_way(sync_client: SyncClient) -> None:
    id = uid()
    assert sync_client.schedule(id, "0 0 1 1 *", "add", (1,), {"b": 2}) == id
    assert sync_client.schedule(id, "0 0 1 1 *", "add", (1, 2)) == id  # the same call
    doc = sync_client.schedules.get(id)
    assert (doc["args"], doc["kwargs"], doc["recent"]) == ([1, 2], {}, [])
    assert id in {s["id"] for s in sync_client.schedules.list()}
    for args, expr, slug in [
        ((1, 3), "0 0 1 1 *", "conflict"),
        ((1,), "0 0 1 1 *", "invalid-arguments"),
        ((1, 2), "61 * * * *", "invalid-cron"),
    ]:
        with pytest.raises(Problem) as problem:
            sync_client.schedule(id, expr, "add", args)
        assert problem.value.slug == slug
    with pytest.raises(Problem) as unknown:
        sync_client.schedule(uid(), "0 * * * *", "nobody")
    assert unknown.value.slug == "unknown-function"
    sync_client.unschedule(id)
    with pytest.raises(Problem) as gone:
        sync_client.unschedule(id)
    assert gone.value.slug == "not-found"


def test_a_schedule_of_a_function_not_exposed_is_not_served(sync_client: SyncClient) -> None:
    id = uid()
    assert id not in {s["id"] for s in sync_client.schedules.list()}  # (starts the client)
    sdk = sync_client.sdk

    async def by_hand() -> None:
        await sdk.schedules.create(
            id,
            "0 * * * *",
            schedules.TICK_TEMPLATE,
            1000,
            Value(data={"func": "secret"}),
            {"resonate:target": "poll://any@x"},
        )

    sync_client._call(by_hand())
    assert id not in {s["id"] for s in sync_client.schedules.list()}
    with pytest.raises(Problem) as hidden:
        sync_client.schedules.get(id)
    assert hidden.value.slug == "not-found"
    with pytest.raises(Problem) as undeletable:
        sync_client.unschedule(id)
    assert undeletable.value.slug == "not-found"


def test_timeout_defaults() -> None:
    assert timedelta(days=1) == schedules.DEFAULT_TIMEOUT


def test_postgres_sessions_read_crons_in_utc() -> None:
    # resonate-pg computes next ticks in the session's time zone.
    assert schedules.utc_sessions("postgresql://u:p@h:5/db") == (
        "postgresql://u:p@h:5/db?options=-c%20timezone%3DUTC"
    )
    kept = "postgresql://h/db?sslmode=require&options=-c%20search_path%3Dx"
    assert schedules.utc_sessions(kept) == (
        "postgresql://h/db?sslmode=require&options=-c%20search_path%3Dx%20-c%20timezone%3DUTC"
    )
    own = "postgresql://h/db?options=-c%20TimeZone%3DUTC"
    assert schedules.utc_sessions(own) == own
