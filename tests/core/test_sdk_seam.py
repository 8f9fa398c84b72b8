"""Canaries for the one seam onto the SDK's internals (``resonate_web._core.sdk``).

Each test exercises one function of the seam against the installed SDK, on a
real embedded backend, and names that function in its failure: an SDK release
that renames what the seam relies on fails here, not far away. The last test
keeps every SDK-private name inside the seam.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import copy
import json
import pickle
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from resonate.context import Context
from resonate.error import ServerError
from resonate.resonate import Resonate
from resonate.retry import Never
from resonate.types import Value

from resonate_web import Functions, Settings
from resonate_web._core import sdk as _sdk
from resonate_web._core.runtime import Runtime

PACKAGE = Path(_sdk.__file__).parents[1]


def _fail(name: str, exc: BaseException) -> None:
    pytest.fail(f"resonate_web._core.sdk.{name} no longer works with this SDK: {exc!r}")


async def approval(ctx: Context) -> object:
    return await ctx.promise()


def boom(ctx: Context) -> None:
    raise ValueError("canary")


async def steps(ctx: Context) -> bool:
    await ctx.sleep(timedelta(milliseconds=10))
    return _sdk.is_workflow(ctx)


def leaf(ctx: Context) -> bool:
    return _sdk.is_workflow(ctx)


@pytest.fixture
async def client() -> AsyncIterator[Resonate]:
    functions = Functions()
    functions.expose(approval)
    functions.expose(boom, retry_policy=Never())
    functions.expose(steps)
    functions.expose(leaf)
    runtime = Runtime(Settings.load(environ={}), functions)
    started = await runtime.start()
    yield started
    await runtime.stop()


def uid() -> str:
    return "seam-" + uuid.uuid4().hex[:10]


def test_sdk_version_is_in_the_tested_range() -> None:
    try:
        assert _sdk.sdk_version_problem() is None, _sdk.sdk_version_problem()
        assert _sdk.sdk_version_problem("0.8.1") is None
        problem = _sdk.sdk_version_problem("0.9.0")
    except Exception as exc:
        _fail("sdk_version_problem", exc)
    assert problem is not None and ">=0.8.1,<0.9" in problem and "0.9.0" in problem
    assert _sdk.sdk_version_problem("0.8.0") is not None


async def test_read_promise_and_decode_value(client: Resonate) -> None:
    id = uid()
    handle = client.run(id, "boom")
    with pytest.raises(ValueError, match="canary"):
        await asyncio.wait_for(handle.result(), 10)
    try:
        record = await _sdk.read_promise(client, id)
        value = _sdk.decode_value(client, record.value)
        param = _sdk.decode_value(client, record.param)
    except Exception as exc:
        _fail("read_promise / decode_value", exc)
    assert record.state == "rejected"
    assert param["func"] == "boom"
    # The rejection as stored: a message and the pickled exception, never loaded here.
    assert value["message"] == "canary"
    pickled = base64.b64decode(value[_sdk.PICKLE_KEY])
    assert b"ValueError" in pickled and isinstance(pickle.loads(pickled), ValueError)
    with pytest.raises(ServerError) as missing:
        await _sdk.read_promise(client, uid())
    assert missing.value.code == 404


async def test_settled_the_lineage_tags_and_the_external_tag(client: Resonate) -> None:
    """The tags the search relies on: every step carries its invocation's id as
    ``resonate:origin``; a ``ctx.promise()`` is tagged external."""
    id = uid()
    handle = client.run(id, "approval")
    for _ in range(200):
        found = await client.promises.search("pending", {"resonate:origin": id}, 10, None)
        steps = [p for p in found.promises if p.id != id]
        if steps:
            break
        await asyncio.sleep(0.02)
    else:
        _fail("EXTERNAL_TAG", AssertionError(f"no step of {id!r} tagged resonate:origin"))
    (record,) = steps
    child = record.id
    assert record.tags.get("resonate:parent") == id, f"resonate:parent: {record.tags}"
    assert record.tags.get(_sdk.EXTERNAL_TAG) == "true", f"EXTERNAL_TAG: {record.tags}"
    await client.promises.resolve(child, _value({"ok": True}))
    try:
        result = await asyncio.wait_for(_sdk.settled(handle), 10)
    except Exception as exc:
        _fail("settled", exc)
    assert result.state == "resolved"
    assert _sdk.decode_value(client, result.value) == {"ok": True}


def _value(data: object) -> object:
    from resonate.types import Value

    return Value(data=data)


async def test_is_workflow(client: Resonate) -> None:
    try:
        assert await asyncio.wait_for(client.run(uid(), "leaf").result(), 10) is False
        assert await asyncio.wait_for(client.run(uid(), "steps").result(), 10) is True
    except AssertionError:
        raise
    except Exception as exc:
        _fail("is_workflow", exc)


async def test_client_pid_and_the_drain_functions(client: Resonate) -> None:
    try:
        assert len(_sdk.client_pid(client)) >= 8
        assert isinstance(_sdk.running_tasks(client), set)
        assert _sdk.held_tasks(client) == {}
        await _sdk.stop_listening(client)
    except Exception as exc:
        _fail("client_pid / running_tasks / held_tasks / stop_listening", exc)


async def test_resolve_target_and_create_promise(client: Resonate) -> None:
    try:
        own = _sdk.resolve_target(client, None)
        workers = _sdk.resolve_target(client, "workers")
        as_is = _sdk.resolve_target(client, "poll://any@elsewhere")
    except Exception as exc:
        _fail("resolve_target", exc)
    assert own.endswith("@gateway") and workers.endswith("@workers"), (own, workers)
    assert as_is == "poll://any@elsewhere"
    id = uid()
    param = client.promises.codec.encode({"func": "leaf", "args": [], "kwargs": {}})
    # Timed out from the start (its timeout is in the past): never runs.
    tags = {"resonate:target": workers, "resonate:schedule": "s"}
    try:
        created = await _sdk.create_promise(client, id, 1, param, tags)
        again = await _sdk.create_promise(client, id, 1, param, {})
    except Exception as exc:
        _fail("create_promise", exc)
    assert created.state == "rejected_timedout" and again.tags == created.tags
    assert created.tags["resonate:schedule"] == "s"
    assert _sdk.decode_value(client, created.param)["func"] == "leaf"


async def test_release_task_reaches_the_backend(client: Resonate) -> None:
    with pytest.raises(ServerError):  # no such task: the backend says so
        await _sdk.release_task(client, "no-such-task", 1)


def test_embedded_connection_routes_by_address() -> None:
    try:
        conn = _sdk.embedded_connection(pid="p1", group="g1")
        own = conn.resolve_target("g1")
        messages = [
            _sdk.OutgoingMessage(address=own, message={}),
            _sdk.OutgoingMessage(address=conn.resolve_target("other"), message={}),
        ]
        kept = _sdk._addressed_to(messages, own)
    except Exception as exc:
        _fail("embedded_connection", exc)
    assert [m.address for m in kept] == [own]


def test_server_state_and_envelopes() -> None:
    try:
        state = _sdk.ServerState()
        flat = _sdk.unwrap_request_envelope(
            {
                "kind": "promise.get",
                "corrId": "c1",
                "head": {},
                "data": {"id": "nope"},
            }
        )
        assert isinstance(_sdk.wrap_response_envelope({"kind": "x"}), dict)
        assert isinstance(state.outgoing, list) and isinstance(state.tasks, dict)
        assert isinstance(state.promises, dict) and isinstance(state.t_timeouts, list)
        # The dev server fires the schedules the state machine stores (Ticker reads these).
        state.apply(
            7,
            {
                "kind": "schedule.create",
                "corrId": "c2",
                "id": "s",
                "cron": "* * * * *",
                "promiseId": "{{.id}}-{{.timestamp}}",
                "promiseTimeout": 1000,
                "promiseParam": {"data": "e30="},
                "promiseTags": {"resonate:target": "poll://any@w"},
            },
        )
        stub = state.schedules["s"]
        assert (stub.id, stub.cron, stub.promise_id, stub.promise_timeout, stub.created_at) == (
            "s",
            "* * * * *",
            "{{.id}}-{{.timestamp}}",
            1000,
            7,
        )
        assert stub.promise_param == {"data": "e30="}
        assert stub.promise_tags == {"resonate:target": "poll://any@w"}
        assert {"id", "state", "version", "pid", "resumes"} <= set(_sdk.Task.__struct_fields__)
        assert _sdk.extract_action_data({"data": {"x": 1}}) is not None
    except Exception as exc:
        _fail("ServerState / Task / envelopes / extract_action_data", exc)
    assert json.dumps(flat)


def _sdk_private_names() -> set[str]:
    """Every underscore name the installed SDK defines or reads (``_sub``, ``_runtime``...)."""
    import resonate

    names: set[str] = set()
    for path in Path(resonate.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = None
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = node.name
            elif isinstance(node, ast.Attribute):
                name = node.attr
            if name and name.startswith("_") and not name.startswith("__"):
                names.add(name)
    return names


def _private_sdk_uses(path: Path, private: set[str]) -> list[str]:
    """SDK-private attributes read off anything but ``self``/``cls``, private SDK
    imports, and imports of the SDK's in-process server module."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("resonate."):
            assert node.module is not None
            found += [
                f"{path.name}:{node.lineno} from {node.module} import {alias.name}"
                for alias in node.names
                if alias.name.startswith("_")
            ]
            if node.module.startswith("resonate.connections.local"):
                found.append(f"{path.name}:{node.lineno} from {node.module}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in private
            and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
        ):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_no_sdk_private_name_outside_the_seam() -> None:
    private = _sdk_private_names()
    assert {"_sub", "_runtime", "_pid", "_dispatch_messages"} <= private  # the scan sees them
    offenders = [
        use
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "_core" / "sdk.py"
        for use in _private_sdk_uses(path, private)
    ]
    assert offenders == [], "SDK internals outside resonate_web/_core/sdk.py: " + ", ".join(
        offenders
    )


async def test_prune_embedded(client: Resonate) -> None:
    id = uid()
    assert await asyncio.wait_for(client.run(id, "leaf").result(), 10) is False
    try:
        forgotten = _sdk.prune_embedded(client, settled_before=2**62, keep=10**6)
    except Exception as exc:
        _fail("prune_embedded", exc)
    assert forgotten >= 1
    with pytest.raises(ServerError):
        await _sdk.read_promise(client, id)


async def test_indexed_state_answers_as_the_sdks() -> None:
    """The embedded backend's indexed state machine answers every request of a real
    run exactly as the SDK's own does, and ends in the same state."""
    recorded: list[tuple[int, Any]] = []
    conn = _sdk.embedded_connection(pid="p", group="g")
    state = conn.state
    assert isinstance(state, _sdk.IndexedState)
    apply = state.apply

    def recording(now: int, req: Any) -> Any:
        recorded.append((now, copy.deepcopy(req)))
        return apply(now, req)

    state.apply = recording  # type: ignore[method-assign]
    client = Resonate(network=conn, group="g", pid="p", env={}, autostart=False)

    def square(ctx: Context, n: int) -> int:
        return n * n

    async def fan_out(ctx: Context, n: int) -> int:
        return sum([await step for step in [ctx.run(square, i) for i in range(n)]])

    async def approval(ctx: Context, n: int) -> int:
        first: int = await ctx.promise()
        second: int = await ctx.promise()
        return first + second + await ctx.run(fan_out, n)

    client.register(square, name="square")
    client.register(fan_out, name="fan_out")
    client.register(approval, name="approval", retry_policy=Never())
    client.start()
    try:
        assert await client.run("fan", "fan_out", 4).result() == 14
        handles = [client.run(f"ask-{i}", "approval", 3) for i in range(3)]
        for i, handle in enumerate(handles):
            for step in (1, 2):
                await _settle_awaited(client, state, f"ask-{i}", step, i)
            assert await handle.result() == 2 * i + 5
        # Settled from outside while it awaits: the settle drops it from the awaiters.
        client.run("dropped", "approval", 3)
        await _wait_awaiting(state, "dropped")
        await client.promises.cancel("dropped", Value(data=None))
    finally:
        await client.stop()

    assert any(req.get("kind") == "task.suspend" for _, req in recorded)
    sdk_state, indexed = _sdk.ServerState(), _sdk.IndexedState()
    for now, req in recorded:
        assert indexed.apply(now, copy.deepcopy(req)) == sdk_state.apply(now, copy.deepcopy(req))
    assert {k: p.to_record() for k, p in indexed.promises.items()} == {
        k: p.to_record() for k, p in sdk_state.promises.items()
    }
    assert {k: set(p.awaiters) for k, p in indexed.promises.items()} == {
        k: p.awaiters for k, p in sdk_state.promises.items()
    }
    assert {k: t.to_record() for k, t in indexed.tasks.items()} == {
        k: t.to_record() for k, t in sdk_state.tasks.items()
    }
    assert not indexed.awaited_by  # every settle dropped its task from the index
    roots = [k for k, p in sdk_state.promises.items() if p.tags.get("resonate:origin") == k]
    assert indexed.roots == len(roots) == 5


async def _wait_awaiting(state: Any, root: str) -> None:
    for _ in range(500):
        if any(root in p.awaiters for p in list(state.promises.values())):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{root} never awaited")


async def _settle_awaited(client: Resonate, state: Any, root: str, step: int, value: int) -> None:
    """Resolve the ``step``-th promise ``root`` awaits, once it is created."""
    for _ in range(500):
        found = [
            p
            for p in list(state.promises.values())
            if p.state == "pending" and p.id != root and p.tags.get("resonate:origin") == root
        ]
        if len(found) == 1 and len([p for p in state.promises if p.startswith(root)]) == step + 1:
            await client.promises.resolve(found[0].id, Value(data=value))
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{root} never awaited a promise for step {step}")


# ── the virtual clock's seams (resonate_web.testing) ──────────────────────


async def test_embedded_connection_runs_on_the_clock_and_sweep_given() -> None:
    """``clock`` dates what the backend stores and times out; ``sweep`` paces its sweep."""
    now = [1_900_000_000_000]
    sweeps: list[float] = []
    swept = asyncio.Event()

    async def sweep(secs: float) -> None:
        sweeps.append(secs)
        swept.set()
        await asyncio.Event().wait()  # only the first sweep runs

    try:
        conn = _sdk.embedded_connection(pid="p", group="g", clock=lambda: now[0], sweep=sweep)
        client = Resonate(network=conn, env={}, autostart=False, clock=lambda: now[0])
        client.start()
        await asyncio.wait_for(swept.wait(), 10)
        await _sdk.create_promise(client, "timer", now[0] + 5_000, Value(), {})
        record = await _sdk.read_promise(client, "timer")
        deadlines = _sdk.embedded_deadlines(client)
        activity = _sdk.embedded_activity(client)
    except Exception as exc:
        _fail("embedded_connection(clock=, sweep=) / embedded_deadlines", exc)
    finally:
        await client.stop()
    assert sweeps and record.created_at == now[0]
    assert deadlines == [(now[0] + 5_000, "timer", "timer", False)]
    assert activity == (0, 0)


async def test_embedded_deadlines_name_the_invocation_and_who_settles(client: Resonate) -> None:
    id = uid()
    client.run(id, "approval")
    for _ in range(200):
        deadlines = _sdk.embedded_deadlines(client)
        if any(d[1] != id for d in deadlines):
            break
        await asyncio.sleep(0.01)
    try:
        mine = {d[1]: d for d in _sdk.embedded_deadlines(client) if d[2] == id}
    except Exception as exc:
        _fail("embedded_deadlines", exc)
    assert mine[id][3] is False  # the invocation's own timeout
    assert mine[f"{id}:1"][3] is True  # its ctx.promise(): someone outside settles it
    assert _sdk.embedded_activity(Resonate(env={}, autostart=False)) == (0, 0)


async def test_context_now_reads_the_clients_clock() -> None:
    seen: list[int] = []

    def when(ctx: Context) -> int:
        seen.append(_sdk.context_now(ctx))
        return seen[-1]

    conn = _sdk.embedded_connection(pid="p", group="g", clock=lambda: 1_900_000_000_000)
    client = Resonate(network=conn, env={}, autostart=False, clock=lambda: 1_900_000_000_000)
    client.register(when)
    client.start()
    try:
        assert await asyncio.wait_for(client.run(uid(), "when").result(), 10) == 1_900_000_000_000
    except AssertionError:
        raise
    except Exception as exc:
        _fail("context_now", exc)
    finally:
        await client.stop()


def test_lease_keeper_takes_a_sleeper() -> None:
    async def sleeper(secs: float) -> None:
        return None

    try:
        keeper = _sdk.LeaseKeeper("p", 15.0, sleeper)
        assert keeper.heartbeat._sleeper is sleeper
        assert keeper.heartbeat.interval_ms == 5000
    except AssertionError:
        raise
    except Exception as exc:
        _fail("LeaseKeeper(sleeper=)", exc)


def test_the_connections_internals_the_seam_builds_on() -> None:
    """http_connection sends on its own pool with the SDK's HttpConnection's retry
    state; postgres_connection hands resonate-pg its own sessions. Each internal
    they read is named here, so a release that renames one fails this first."""
    conn = _sdk.http_connection("http://127.0.0.1:9", auth="t", backoff=None)
    for name in ("_url", "_conn_limit", "_backoff", "_stopped", "_running"):
        if not hasattr(conn, name):
            _fail("http_connection", AttributeError(name))
    for method in ("_auth_headers", "_sleep_or_stop"):
        if not callable(getattr(conn, method, None)):
            _fail("http_connection", AttributeError(method))
    assert conn._auth_headers({})["Authorization"] == "Bearer t"
    try:
        network = _sdk.postgres_connection("postgresql://u@127.0.0.1:9/db", pid="p", group="g")
    except Exception as exc:
        _fail("postgres_connection", exc)
    assert isinstance(network._sessions, _sdk._PgSessions)
