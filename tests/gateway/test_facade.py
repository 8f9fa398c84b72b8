"""The framework-free client facade, the portal's guards and the ``within`` wrap hook."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from resonate.context import Context
from resonate.retry import Never

from examples.gateway_worker import functions as example
from resonate_web import ConfigurationError, Functions, Problem, Settings
from resonate_web._adapter import serve_sync
from resonate_web._core.runtime import Portal, Runtime, within
from resonate_web._gateway.router import ROUTES, Gateway, Request
from resonate_web._inprocess import AsyncClient, SyncClient, host
from tests.support.functions import build
from tests.support.procs import free_port

CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="none")


@contextlib.contextmanager
def entered(value: str) -> Iterator[None]:
    token = CURRENT.set(value)
    try:
        yield
    finally:
        CURRENT.reset(token)


@dataclass
class Point:
    x: int
    y: int


def where(ctx: Context, point: Point) -> str:
    assert isinstance(point, Point)
    return f"{CURRENT.get()}:{point.x + point.y}"


async def awhere(ctx: Context, tag: str) -> str:
    await asyncio.sleep(0.01)
    return f"{CURRENT.get()}:{tag}"


async def blocking(ctx: Context) -> int:
    """Calls the sync client from inside an async durable function (on the portal loop)."""
    return int(CLIENTS[0].run("inner-" + uuid.uuid4().hex, "add", 1, 1).result(timeout=5))


def nested(ctx: Context) -> int:
    """Calls the sync client from a sync durable function: it runs in a thread, so it may."""
    return int(CLIENTS[0].run("inner-" + uuid.uuid4().hex, "add", 2, 2).result(timeout=5))


CLIENTS: list[SyncClient] = []


def uid() -> str:
    return "f-" + uuid.uuid4().hex[:12]


@pytest.fixture
def portal() -> Iterator[Portal]:
    functions = build()
    functions.expose(where)
    functions.expose(awhere)
    functions.expose(blocking, retry_policy=Never())
    functions.expose(nested, retry_policy=Never())
    runtime = Runtime(Settings.load(environ={}), functions, wrap=within(lambda: entered("in")))
    portal = Portal(runtime)
    yield portal
    portal.close()


def test_run_by_name_or_by_exposed_function(portal: Portal) -> None:
    client = SyncClient(portal)
    id = uid()
    handle = client.run(id, "add", 2, 3)
    assert handle.id == id
    assert handle.result(timeout=10) == 5
    assert handle.done()
    assert handle.status()["status"] == "resolved"
    assert client.status(id)["result"] == 5
    assert client.run(uid(), example.add, 20, 22).result(timeout=10) == 42
    assert client.get(id).result(timeout=10) == 5


def test_result_timeout_leaves_the_invocation_running(portal: Portal) -> None:
    client = SyncClient(portal)
    id = uid()
    handle = client.run(id, "slow", 0.5, "late")
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.05)
    assert not handle.done()
    assert handle.result(timeout=10) == "late"


def test_errors_are_raised_to_the_caller(portal: Portal) -> None:
    with pytest.raises(ValueError, match="boom"):
        SyncClient(portal).run(uid(), "fail", "boom").result(timeout=10)


def test_async_client_from_fresh_loops(portal: Portal) -> None:
    """Like Flask's async views: every call on a new loop, none of them the client's."""
    client = AsyncClient(portal)

    async def once(n: int) -> int:
        handle = await client.run(uid(), "add", n, n)
        assert handle.id
        return int(await handle.result(timeout=10))

    assert [asyncio.run(once(n)) for n in range(3)] == [0, 2, 4]


def test_promises_settle_an_approval(portal: Portal) -> None:
    client = SyncClient(portal)
    id = uid()
    handle = client.run(id, "approval", "ship it?")
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(Exception):
            if client.promises.get(f"{id}:1")["status"] == "pending":
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    record = client.promises.resolve(f"{id}:1", {"ok": True})
    assert record == {
        "id": f"{id}:1",
        "status": "resolved",
        "value": {"ok": True},
        "awaited_by": id,
    }
    # The same settle again is idempotent on the backend; another one conflicts.
    with pytest.raises(Problem, match="already settled"):
        client.promises.reject(f"{id}:1", "no")
    assert handle.result(timeout=10) == {"ok": True}


def test_run_follows_the_exposure_and_binds_like_the_route(portal: Portal) -> None:
    client = SyncClient(portal)
    # A dispatch-only function goes to its target group (nobody serves it here).
    remote = client.run(uid(), "remote_add", 1, 2)
    assert remote.status()["status"] == "pending"
    with pytest.raises(Problem) as bad:
        client.run(uid(), "add", "1", 2)
    assert bad.value.slug == "invalid-arguments"
    with pytest.raises(Problem) as unknown:
        client.run(uid(), "not_exposed")
    assert unknown.value.slug == "unknown-function"
    id = uid()
    assert client.run(id, "add", 1, 2).result(timeout=10) == 3
    # Same id, same call (spelled by keyword): a replay; another call: refused.
    assert client.run(id, "add", a=1, b=2).result(timeout=10) == 3
    with pytest.raises(Problem) as reused:
        client.run(id, "add", 2, 2)
    assert reused.value.slug == "idempotency-key-reused"
    with pytest.raises(Problem) as missing:
        client.status(uid())
    assert missing.value.slug == "not-found"


def test_schedule_and_unschedule(portal: Portal) -> None:
    client = SyncClient(portal)
    id = uid()
    assert client.schedule(id, "0 * * * *", "ping") == id
    client.unschedule(id)


def test_within_runs_functions_inside_the_context(portal: Portal) -> None:
    client = SyncClient(portal)
    assert client.run(uid(), "where", Point(1, 2)).result(timeout=10) == "in:3"
    assert client.run(uid(), "awhere", "x").result(timeout=10) == "in:x"
    assert CURRENT.get() == "none"


def test_within_keeps_the_signature_with_resolved_annotations() -> None:
    wrap = within(contextlib.nullcontext)
    sync, coro = wrap(where), wrap(awhere)
    assert sync.__name__ == "where" and sync.__wrapped__ is where  # type: ignore[attr-defined]
    assert inspect.signature(sync).parameters["point"].annotation is Point
    assert inspect.signature(sync).return_annotation is str
    assert inspect.iscoroutinefunction(coro)
    assert list(inspect.signature(coro).parameters) == ["ctx", "tag"]


def test_a_blocking_call_from_inside_a_durable_function_fails_instead_of_deadlocking(
    portal: Portal,
) -> None:
    client = SyncClient(portal)
    CLIENTS[:] = [client]
    with pytest.raises(RuntimeError, match="deadlock"):
        client.run(uid(), "blocking").result(timeout=10)
    # A sync function runs in a thread of its own, so the sync client works there.
    assert client.run(uid(), "nested").result(timeout=10) == 4


def test_multiprocess_server_on_the_embedded_backend_is_refused(portal: Portal) -> None:
    portal.check_server(multiprocess=False)
    assert SyncClient(portal).run(uid(), "ping").result(timeout=10) == "pong"
    hosted = host(portal.runtime.settings, portal.runtime.functions)
    object.__setattr__(hosted, "portal", portal)
    object.__setattr__(hosted, "gateway", Gateway(portal.runtime))
    request = Request(method="GET", prefix="/resonate")
    health = next(r for r in ROUTES if r.name == "health")
    response = serve_sync(hosted, health, request, "/resonate/health", multiprocess=True)
    assert response.status == 503
    assert response.body["type"] == "urn:resonate-web:problem:backend-unavailable"
    assert "RESONATE_URL" in response.body["detail"]
    assert "resonate-web dev" in response.body["detail"]
    assert "Retry-After" not in response.headers
    # From then on the facade fails the same way.
    with pytest.raises(ConfigurationError, match="several processes"):
        SyncClient(portal).run(uid(), "ping")


def test_multiprocess_server_with_a_shared_backend_is_fine() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    portal = Portal(Runtime(Settings.load(environ={}, url=url), Functions()))
    portal.check_server(multiprocess=True)
    portal.close()


def _in_child(portal: Portal) -> int:
    """Fork; in the child use ``portal`` and exit 0 if it refused, 1 if it served."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 2
        try:
            SyncClient(portal).run("child-" + uuid.uuid4().hex, "ping").result(timeout=5)
            code = 1
        except ConfigurationError as exc:
            code = 0 if "is a fork of it" in str(exc) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_embedded_portal_used_in_a_forked_child_refuses(portal: Portal) -> None:
    assert SyncClient(portal).run(uid(), "ping").result(timeout=10) == "pong"
    assert _in_child(portal) == 0
    # The parent keeps serving.
    assert SyncClient(portal).run(uid(), "ping").result(timeout=10) == "pong"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_portal_first_used_after_the_fork_is_the_childs_own() -> None:
    """A master that imported the app but never used it (gunicorn -w 1) forks a fine worker."""
    portal = Portal(Runtime(Settings.load(environ={}), build()))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            result: Any = SyncClient(portal).run("c-" + uuid.uuid4().hex, "ping").result(5)
            code = 0 if result == "pong" else 1
        finally:
            portal.close()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_tags_rerun_bulk_and_stats_in_process(portal: Portal) -> None:
    client = SyncClient(portal)
    batch, id = uid(), uid()
    with pytest.raises(ValueError, match="once"):
        client.run(id, "fail", "once", tags={"batch": batch}).result(timeout=10)
    assert client.status(id)["tags"] == {"batch": batch}
    with pytest.raises(Problem) as bad:
        client.run(uid(), "add", 1, 2, tags={"resonate-x": "y"})
    assert bad.value.slug == "invalid-tags"
    with pytest.raises(Problem) as reused:
        client.run(id, "fail", "once", tags={"batch": "other"})
    assert reused.value.slug == "idempotency-key-reused"
    rerun = client.rerun(id, new_id=f"{id}-2")
    assert rerun["rerun_of"] == id and rerun["tags"] == {"batch": batch}
    with pytest.raises(ValueError, match="once"):
        client.get(f"{id}-2").result(timeout=10)
    slow = client.run(uid(), "slow", 60, "x", tags={"batch": batch})
    with pytest.raises(Problem) as pending:
        client.rerun(slow.id)
    assert pending.value.slug == "conflict"
    canceled = client.cancel_many(tags={"batch": batch}, status="pending")
    assert canceled["done"] == [slow.id]
    assert client.status(slow.id)["status"] == "canceled"
    stats = client.stats("fail", window=600)
    assert stats["counts"]["rejected"] >= 2 and stats["failure_rate"] == 1

    async def main() -> dict[str, Any]:
        aclient = AsyncClient(portal)
        handle = await aclient.run(uid(), "add", 1, 2, tags={"batch": batch})
        assert await handle.result(timeout=10) == 3
        again = await aclient.rerun_many(tags={"batch": batch}, function="add")
        assert again["done"] == [handle.id]
        return await aclient.stats("add")

    assert asyncio.run(main())["counts"]["resolved"] >= 1
