"""``resonate_web.client`` against real server processes (uvicorn, gunicorn), sync and async."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

import pytest

from resonate_web import client as rc
from resonate_web.client import AsyncClient, Client
from tests.support import procs, servers

KINDS = ["fastapi-uvicorn", "flask-gunicorn"]


def uid(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=KINDS)
def base(request: pytest.FixtureRequest) -> str:
    return servers.shared(str(request.param))


def test_the_sync_client_covers_every_route(base: str) -> None:
    with Client(base) as api:
        names = {f.name for f in api.functions()}
        assert {"add", "approval", "slow"} <= names

        started = api.start("add", 20, 22, wait=10)
        assert started.status == "resolved" and started.result == 42
        assert api.wait(started.id, timeout=10) == 42
        assert api.start("add", a=1, b=2, id=started.id + "-kw").id == started.id + "-kw"

        failed = api.start("fail", "boom")
        with pytest.raises(rc.Rejected) as rejected:
            api.wait(failed.id, timeout=10)
        assert (rejected.value.type, rejected.value.message) == ("ValueError", "boom")

        slow = api.start("slow", 60, "never")
        with pytest.raises(TimeoutError):
            api.wait(slow.id, timeout=0.2)
        assert api.cancel(slow.id).status == "canceled"
        with pytest.raises(rc.Canceled):
            api.wait(slow.id, timeout=10)

        timed = api.start("slow_timeout", 60, "late")
        with pytest.raises(rc.TimedOut):
            api.wait(timed.id, timeout=30)

        approval = api.start("approval", "ship?", id=uid("ap"))
        promise = servers.awaited_promise(api, approval.id)
        assert api.promise(promise).status == "pending"
        assert api.resolve(promise, {"ok": True}).status == "resolved"
        assert api.wait(approval.id, timeout=10) == {"ok": True}

        countdown = api.start("countdown", 2, 0.05, wait=15)
        tree = api.tree(countdown.id)
        assert [c.kind for c in tree.children] == ["sleep", "sleep"]

        listed = [
            doc.id for doc, _ in zip(api.list(function="add", limit=1), range(3), strict=False)
        ]
        assert started.id + "-kw" in listed or started.id in listed


def test_events_stream_pending_then_settled(base: str) -> None:
    with Client(base) as api:
        started = api.start("slow", 0.5, "streamed")
        statuses = [doc.status for doc in api.events(started.id)]
    assert statuses == ["pending", "resolved"]


def test_problems_raise_one_class_per_slug(base: str) -> None:
    with Client(base) as api:
        with pytest.raises(rc.UnknownFunction) as unknown:
            api.start("nope")
        assert unknown.value.status == 404 and unknown.value.problem["type"].endswith("function")
        with pytest.raises(rc.InvalidArguments):
            api.start("add", "x", 1)
        with pytest.raises(rc.InvalidId):
            api.status("a..b")
        with pytest.raises(rc.NotFound):
            api.status(uid("missing"))
        done = api.start("add", 1, 1, wait=10)
        with pytest.raises(rc.Conflict):
            api.cancel(done.id)
        with pytest.raises(rc.InvalidQuery):
            next(iter(api.list(status="done")))
    assert set(rc.PROBLEMS) == {cls.slug for cls in rc.ProblemError.__subclasses__()}


def test_the_async_client_covers_the_same_routes(base: str) -> None:
    async def main() -> None:
        async with AsyncClient(base) as api:
            assert "add" in {f.name for f in await api.functions()}
            started = await api.start("add", 2, 3)
            assert await api.wait(started.id, timeout=10) == 5
            failed = await api.start("fail", "async boom")
            with pytest.raises(rc.Rejected):
                await api.wait(failed.id, timeout=10)
            approval = await api.start("approval", "ok?")
            promise = None
            for _ in range(300):
                doc = await api.status(approval.id, wait=0.1)
                if doc.awaiting:
                    promise = doc.awaiting[0]
                    break
            assert promise is not None
            assert (await api.reject(promise, {"why": "no"})).status == "rejected"
            with pytest.raises(rc.Rejected):
                await api.wait(approval.id, timeout=10)
            slow = await api.start("slow", 0.5, "s")
            assert [d.status async for d in api.events(slow.id)] == ["pending", "resolved"]
            assert (await api.tree(started.id)).function == "add"
            page = [d.id async for d in api.list(function="add", limit=100)]
            assert started.id in page
            with pytest.raises(rc.NotFound):
                await api.cancel(uid("missing"))

    asyncio.run(main())


def test_list_limit_is_the_most_it_yields_and_page_size_each_request(base: str) -> None:
    with Client(base) as api:
        ids = [api.start("add", n, n, wait=10).id for n in range(3)]
        assert len(list(api.list(function="add", limit=2))) == 2
        listed = [d.id for d in api.list(function="add", limit=3, page_size=1)]
        assert listed == ids[::-1]  # newest first, across three pages of one

    async def main() -> None:
        async with AsyncClient(base) as api:
            assert len([d async for d in api.list(function="add", limit=2)]) == 2
            paged = [d.id async for d in api.list(function="add", limit=3, page_size=2)]
            assert paged == ids[::-1]

    asyncio.run(main())


def test_a_client_not_pointed_at_the_routes_says_how_to_point_it(base: str) -> None:
    with Client(base + "/resonate") as api, pytest.raises(rc.ProblemError) as doubled:
        api.functions()
    said = str(doubled.value)
    assert doubled.value.status == 404 and "already ends with the prefix '/resonate'" in said
    with Client(base, prefix="/api") as api, pytest.raises(rc.ProblemError) as elsewhere:
        api.functions()
    assert "is base_url the app's root and prefix where the routes are mounted?" in str(
        elsewhere.value
    )
    with Client(base) as api, pytest.raises(rc.NotFound) as ours:
        api.status(uid("missing"))
    assert "base_url" not in str(ours.value)  # resonate-web's own 404 is left as it is


def test_invalid_arguments_name_the_fields_that_failed(base: str) -> None:
    with Client(base) as api, pytest.raises(rc.InvalidArguments) as invalid:
        api.start("add", "one", 2.5)
    assert invalid.value.fields == ["a", "b"]
    assert "a (Input should be a valid integer)" in str(invalid.value)
    assert "b (" in invalid.value.detail


@pytest.mark.multiprocess
def test_a_503_is_retried_until_the_backend_answers() -> None:
    """The gateway's backend is down (a dev server that is not started yet): each try
    is a prompt 503 with Retry-After; once the backend is up, a retry gets through."""
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"RESONATE_URL": url}
    with procs.uvicorn("tests.support.fastapi_app:app", env=env) as base:
        with Client(base, retries=1) as api, pytest.raises(rc.BackendUnavailable) as down:
            api.status("x")
        assert "refused" in down.value.detail.lower()
        with concurrent.futures.ThreadPoolExecutor(1) as pool, Client(base, retries=120) as api:
            started = pool.submit(api.start, "ping")
            argv = procs.python_module("resonate_web.cli", "dev", "--port", str(port))
            with procs.process(argv, ready_url=f"{url}/health"):
                doc = started.result(timeout=120)
                assert doc.status == "pending"  # dispatched: no worker serves it here
                assert api.status(doc.id).id == doc.id


def test_tags_rerun_bulk_and_stats_through_the_client(base: str) -> None:
    batch = uid("batch")
    with Client(base) as api:
        failed = api.start("fail", "once", tags={"batch": batch}, wait=10)
        assert failed.status == "rejected" and failed.tags == {"batch": batch}
        with pytest.raises(rc.InvalidTags):
            api.start("add", 1, 2, tags={"Bad Key": "x"})
        rerun = api.rerun(failed.id, new_id=failed.id + "-again")
        assert rerun.id == failed.id + "-again" and rerun.rerun_of == failed.id
        assert rerun.tags == {"batch": batch}
        with pytest.raises(rc.Rejected):
            api.wait(rerun.id, timeout=10)
        assert [d.id for d in api.list(tags={"batch": batch})] == [rerun.id, failed.id]
        slow = api.start("slow", 60, "x", tags={"batch": batch})
        with pytest.raises(rc.Conflict):
            api.rerun(slow.id)
        again = api.rerun_many(tags={"batch": batch}, function="fail", limit=1)
        assert again.matched == 1 and len(again.done) == 1 and again.next
        # Only the slow one: the rerun just started may still be pending (it fails soon).
        canceled = api.cancel_many(tags={"batch": batch}, function="slow", status="pending")
        assert canceled.done == [slow.id] and canceled.skipped == []
        with pytest.raises(rc.InvalidQuery):
            api.cancel_many()
        stats = api.stats("fail", window=600)
        assert stats.function == "fail" and stats.counts.rejected >= 2
        assert stats.failure_rate is not None and stats.duration_ms is not None

    async def main() -> None:
        async with AsyncClient(base) as api:
            done = await api.start("add", 1, 2, tags={"batch": batch}, wait=10)
            rerun = await api.rerun(done.id)
            assert rerun.rerun_of == done.id and await api.wait(rerun.id, timeout=10) == 3
            listed = [d.id async for d in api.list(tags={"batch": batch}, function="add")]
            assert listed == [rerun.id, done.id]
            bulk = await api.rerun_many(tags={"batch": batch}, function="add", limit=1)
            assert bulk.matched == 1
            # the rerun may still run: wait for everything the batch started
            for found in [d async for d in api.list(tags={"batch": batch}, function="add")]:
                await api.wait(found.id, timeout=10)
            nothing = await api.cancel_many(tags={"batch": batch}, function="add", status="pending")
            assert nothing.matched == 0
            assert (await api.stats("add")).counts.resolved >= 2

    asyncio.run(main())
