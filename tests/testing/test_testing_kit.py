"""The testing kit (resonate_web.testing): a function sleeping 3 days, a step retried
with exponential backoff, a promise timing out after a week and 24 hourly schedule
ticks, each under FastAPI's, Flask's and Django's own test client, on the
``resonate_clock`` fixture's virtual time. Nothing here waits real time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from resonate_web.settings import ConfigurationError
from resonate_web.testing import Deadline, StillPending, VirtualClock
from tests.support import clocked, fastapi_app
from tests.support.clocked_apps import FRAMEWORKS, served

SPEC = "tests.support.clocked:functions"
START = datetime(2030, 1, 1, tzinfo=UTC)
START_MARKED = datetime(2031, 6, 1, 12, tzinfo=UTC)

frameworks = pytest.mark.parametrize("framework", FRAMEWORKS)


def app(framework: str):  # type: ignore[no-untyped-def]
    return served(framework, clocked.functions, SPEC)


@frameworks
def test_a_three_day_sleep(framework: str, resonate_clock: VirtualClock, uid: str) -> None:
    assert resonate_clock.now == START
    with app(framework) as http:
        assert http.start("nap", uid, 3)["status"] == "pending"
        resonate_clock.advance(timedelta(days=2, hours=23))
        assert http.status(uid)["status"] == "pending"
        resonate_clock.advance(timedelta(hours=1))
        doc = http.status(uid)
        assert doc["status"] == "resolved", doc
        assert doc["result"] == "woke after 3 days"
        assert doc["settled_at"] == "2030-01-04T00:00:00.000Z"
        assert resonate_clock.now == START + timedelta(days=3)


@frameworks
def test_run_until_settled_skips_the_sleep(
    framework: str, resonate_clock: VirtualClock, uid: str
) -> None:
    with app(framework) as http:
        http.start("nap", uid, 3)
        doc = resonate_clock.run_until_settled(uid)
        assert doc["status"] == "resolved" and doc["result"] == "woke after 3 days"
        assert resonate_clock.now == START + timedelta(days=3)


@frameworks
def test_exponential_backoff(framework: str, resonate_clock: VirtualClock, uid: str) -> None:
    """Attempts at 0 s, 2 s, 6 s and 14 s (backoff 2, 4, 8): each exactly when due."""
    with app(framework) as http:
        http.start("retried", uid, uid, 3)
        resonate_clock.settle()
        seen = [clocked.ATTEMPTS[uid]]
        for step in (1.999, 0.001, 3.999, 0.001, 7.999, 0.001):
            resonate_clock.advance(step)
            seen.append(clocked.ATTEMPTS[uid])
        assert seen == [1, 1, 2, 2, 3, 3, 4]
        doc = http.status(uid)
        assert doc["status"] == "resolved" and doc["result"] == 4, doc
        assert resonate_clock.now == START + timedelta(seconds=14)


@frameworks
def test_a_promise_times_out_after_a_week(
    framework: str, resonate_clock: VirtualClock, uid: str
) -> None:
    with app(framework) as http:
        http.start("approve", uid, "a raise")
        resonate_clock.settle()
        awaiting = http.status(uid)["awaiting"]
        assert len(awaiting) == 1
        resonate_clock.advance(timedelta(days=6, hours=23))
        assert http.status(uid)["status"] == "pending"
        # A promise someone settles: run_until_settled does not skip to its timeout.
        with pytest.raises(StillPending, match=awaiting[0]):
            resonate_clock.run_until_settled(uid)
        resonate_clock.advance(timedelta(hours=1))
        doc = http.status(uid)
        assert doc["status"] == "rejected", doc
        assert "timed out" in doc["error"]["message"]
        assert resonate_clock.now == START + timedelta(weeks=1)


@frameworks
def test_24_hourly_ticks(framework: str, resonate_clock: VirtualClock) -> None:
    with app(framework) as http:
        # Flask and Django start the runtime on first use (this request).
        status, listing = http.get("/resonate/schedules")
        assert status == 200 and "hourly" in str(listing)
        resonate_clock.settle()
        clocked.TICKS.clear()
        resonate_clock.advance(timedelta(hours=24))
        assert len(clocked.TICKS) == 24, clocked.TICKS
        docs = [http.status(id) for id in clocked.TICKS]
        assert [d["status"] for d in docs] == ["resolved"] * 24
        hours = [START + timedelta(hours=n) for n in range(1, 25)]
        assert [d["created_at"] for d in docs] == [f"{at:%Y-%m-%dT%H:%M:%S}.000Z" for at in hours]


@frameworks
def test_nothing_scheduled_raises_at_once(
    framework: str, resonate_clock: VirtualClock, uid: str
) -> None:
    """An approval with no timeout of its own: skipping time cannot settle it."""
    with served(framework, clocked.functions, SPEC) as http:
        http.start("wait_for_someone", uid)
        with pytest.raises(StillPending, match=rf"{uid} is still pending.*awaits {uid}:1$"):
            resonate_clock.run_until_settled(uid)
        assert resonate_clock.now == START
        promise = http.status(uid)["awaiting"][0]
        status, _ = http.post(f"/resonate/promises/{promise}/resolve", {"value": "yes"})
        assert status == 200
        assert resonate_clock.run_until_settled(uid)["result"] == "yes"


@frameworks
def test_a_server_backend_is_refused(framework: str, resonate_clock: VirtualClock) -> None:
    """FastAPI's lifespan fails; Flask and Django answer each request with the reason."""
    url = "http://127.0.0.1:9"
    if framework == "fastapi":
        with (
            pytest.raises(ConfigurationError, match="only on the embedded backend"),
            served(framework, clocked.functions, SPEC, url=url),
        ):
            pass
        return
    with served(framework, clocked.functions, SPEC, url=url) as http:
        status, problem = http.get("/resonate/functions")
    assert status == 503, problem
    assert "only on the embedded backend" in problem["detail"]


@frameworks
@pytest.mark.resonate_clock(start="2031-06-01T12:00:00Z")
def test_the_start_is_marked(framework: str, resonate_clock: VirtualClock, uid: str) -> None:
    assert resonate_clock.now == START_MARKED
    with app(framework) as http:
        assert http.start("nap", uid, 1)["created_at"] == "2031-06-01T12:00:00.000Z"
        resonate_clock.settle()
        timer = Deadline(START_MARKED + timedelta(days=1), f"timeout of promise {uid}:1")
        assert timer in resonate_clock.upcoming()


async def test_an_async_test_with_asgi_transport(resonate_clock: VirtualClock, uid: str) -> None:
    """httpx's ASGITransport with the lifespan run by the test: the runtime runs on the
    test's own loop, and the a-methods drive the clock from it."""
    app = fastapi_app.create_app(clocked.functions)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        started = await client.post(
            f"/resonate/functions/retried?id={uid}", json={"args": [uid, 2]}
        )
        assert started.status_code == 202, started.text
        await resonate_clock.asettle()
        assert clocked.ATTEMPTS[uid] == 1
        await resonate_clock.aadvance(2)
        assert clocked.ATTEMPTS[uid] == 2
        with pytest.raises(RuntimeError, match=r"await resonate_clock\.aadvance"):
            resonate_clock.advance(1)
        doc = await resonate_clock.arun_until_settled(uid)
        assert doc["result"] == 3
        assert resonate_clock.now == START + timedelta(seconds=6)
        # ?wait= on the virtual clock: answers at once for a settled invocation.
        assert (await client.get(f"/resonate/invocations/{uid}?wait=5")).json()["result"] == 3


def test_the_plugin_is_an_entry_point_of_the_package() -> None:
    """Installing resonate-web gives pytest the fixture (``pytest11``)."""
    import tomllib

    from resonate_web.testing import plugin
    from tests.support import procs

    project = tomllib.loads((procs.ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"resonate_web": "resonate_web.testing.plugin"}
    assert callable(plugin.resonate_clock)
