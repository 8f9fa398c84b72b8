"""The backends a URL selects: the wiring each builds, and the errors for bad setups."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta

import pytest
from resonate.connections import HttpConnection, SSEConnection
from resonate.types import Value

from resonate_web import Functions
from resonate_web._core.runtime import Runtime, build_client
from resonate_web._gateway.router import Gateway, Request
from resonate_web.settings import ConfigurationError, Settings
from tests.support import postgres, procs

DSN = "postgresql://app:secret@db.internal:5432/app"


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        (None, "embedded"),
        ("http://127.0.0.1:8001", "http"),
        ("https://resonate.example.com/", "http"),
        (DSN, "postgres"),
        ("postgres://app@localhost/app", "postgres"),
    ],
)
def test_the_url_selects_the_backend(url: str | None, backend: str) -> None:
    assert Settings.load(url=url, environ={}).backend == backend
    env = {"RESONATE_URL": url} if url else {}
    assert Settings.load(environ=env).backend == backend


@pytest.mark.parametrize("url", ["mysql://x/y", "127.0.0.1:8001", "redis://localhost"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="postgresql:// DSN"):
        Settings.load(url=url, environ={})


def test_a_dsn_is_kept_verbatim() -> None:
    assert Settings.load(url=DSN + "?sslmode=require", environ={}).url == DSN + "?sslmode=require"


def test_http_url_builds_the_sdk_http_and_sse_connections() -> None:
    settings = Settings.load(url="http://127.0.0.1:8001/", lease_ttl=7, environ={})
    client = build_client(settings, group="workers", pid="w1")
    assert isinstance(client._network, HttpConnection)
    (source,) = client._connections[:-1]
    assert isinstance(source, SSEConnection)
    assert source.unicast() == "poll://uni@workers/w1"
    assert client._resolve_target("workers") == "poll://any@workers"
    assert client._ttl == timedelta(seconds=7)
    gateway = build_client(settings, pid="g1")
    assert gateway._connections[0].unicast() == "poll://uni@gateway/g1"


def test_postgres_dsn_builds_one_resonate_pg_connection_in_the_client_s_group() -> None:
    from resonate_pg import PostgresConnection

    settings = Settings.load(url=DSN, environ={})
    worker = build_client(settings, group="workers", pid="w1")
    connection = worker._network
    assert isinstance(connection, PostgresConnection)
    # Network and source at once, in the same group as the client.
    assert worker._connections == [connection]
    assert worker._group == "workers"
    assert connection.unicast() == "poll://uni@workers/w1"
    assert connection.resolve_target("workers") == "poll://any@workers"
    # The gateway drains its own group, never the workers'.
    gateway = build_client(settings, pid="g1")
    assert gateway._network.unicast() == "poll://uni@gateway/g1"
    assert gateway._resolve_target(settings.target) == "poll://any@workers"


def test_postgres_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "resonate_pg", None)
    settings = Settings.load(url=DSN, environ={})
    with pytest.raises(ConfigurationError, match=r"pip install 'resonate-web\[pg\]'"):
        build_client(settings)


def test_a_worker_on_a_database_without_the_schema_exits_with_a_clear_error(
    pg_empty_dsn: str,
) -> None:
    argv = procs.python_module("resonate_web.cli", "worker", "examples.gateway_worker.functions")
    env = {"PYTHONPATH": procs.PYTHONPATH, "PATH": "/usr/bin:/bin", "RESONATE_URL": pg_empty_dsn}
    out = subprocess.run(argv, env=env, cwd=procs.ROOT, capture_output=True, timeout=60, text=True)
    assert out.returncode == 2, out.stderr
    assert 'schema "resonate" does not exist' in out.stderr
    assert "resonate.sql" in out.stderr
    password = pg_empty_dsn.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert ":***@127.0.0.1" in out.stderr  # the user, never the password
    assert not password or password not in out.stderr


async def test_the_gateway_reports_a_database_without_the_schema_as_unavailable(
    pg_empty_dsn: str,
) -> None:
    settings = Settings.load(url=pg_empty_dsn, environ={})
    runtime = Runtime(settings, Functions())
    await runtime.start()
    try:
        gateway = Gateway(runtime)
        response = await gateway.handle("health", Request(method="GET"), "/resonate/health")
    finally:
        await runtime.stop()
    assert response.status == 503
    assert response.body["type"] == "urn:resonate-web:problem:backend-unavailable"


def test_a_gateway_never_joins_the_group_it_dispatches_to() -> None:
    from examples.gateway_worker.functions import functions

    clash = Settings.load(url="http://127.0.0.1:8001", group="workers", environ={})
    with pytest.raises(ConfigurationError, match="never joins a worker group"):
        Runtime(clash, functions)
    Runtime(clash, functions, group="workers")  # a worker of that group: fine
    Runtime(Settings.load(group="workers", environ={}), functions)  # embedded: runs inline
    apart = Settings.load(url="http://127.0.0.1:8001", group="web", environ={})
    assert Runtime(apart, functions).exposed["add"].target == "workers"


async def test_flow_control_s_table_is_made_once_for_concurrent_first_calls(
    pg_cluster: postgres.Cluster,
) -> None:
    """On a database where ``resonate_web.flow`` does not exist yet, twenty flow calls
    at once from one process all succeed: none reads the table on another session
    before the transaction that made it committed."""
    from resonate_web._core import flow

    dsn = pg_cluster.database("flow_first_use")
    try:
        client = build_client(Settings.load(url=dsn, environ={}), group="g")
        client.start()
        try:
            answers = await asyncio.gather(
                *(flow.waiting(client, [f"fn-{i}"]) for i in range(20)),
                return_exceptions=True,
            )
        finally:
            await client.stop()
        assert [a for a in answers if isinstance(a, BaseException)] == []
        assert all(counts[f"fn-{i}"]["running"] == 0 for i, (_, counts) in enumerate(answers))  # type: ignore[misc]
    finally:
        pg_cluster.drop(dsn)


async def test_the_server_connection_posts_on_one_kept_connection() -> None:
    """Requests to a Resonate server go out on the lean pool, over one persistent
    connection when they come one at a time, and its answers are the SDK's."""
    from resonate_web._core import sdk as _sdk

    with procs.dev_server() as url:
        client = build_client(Settings.load(url=url, environ={}), group="g")
        client.start()
        try:
            records = [
                await client.promises.create(f"p-{i}", 2**62, Value(data=i), {}) for i in range(10)
            ]
            for i, created in enumerate(records):
                assert created.id == f"p-{i}" and created.state == "pending"
                assert (await _sdk.read_promise(client, f"p-{i}")).id == f"p-{i}"
            pool = client._network._pool  # type: ignore[attr-defined]
            assert pool is not None and pool.connections_made == 1
        finally:
            await client.stop()
        assert client._network._pool is None  # type: ignore[attr-defined]


async def test_postgres_requests_are_one_round_trip_and_the_drain_one_transaction(
    pg_dsn: str,
) -> None:
    """resonate-pg's requests run on autocommit connections (one statement each: no
    BEGIN and COMMIT around them), while a session of several statements, such as
    the connector's drain of its outbox, is still one transaction."""
    from psycopg.pq import TransactionStatus

    from resonate_web._core import sdk as _sdk

    network = _sdk.postgres_connection(pg_dsn, pid="p", group="g")
    seen: dict[str, TransactionStatus] = {}
    try:
        async with network._sessions.session() as conn:  # how the drain borrows one
            await conn.execute("SELECT 1")
            seen["drain"] = conn.info.transaction_status
        with _sdk._one_statement():  # how send borrows one for a request
            async with network._sessions.session() as conn:
                await conn.execute("SELECT 1")
                seen["request"] = conn.info.transaction_status
        # And a real request through the connector answers.
        client = build_client(Settings.load(url=pg_dsn, environ={}), group="g")
        client.start()
        try:
            created = await client.promises.create("one-trip", 2**62, Value(data=1), {})
            assert created.state == "pending"
            assert (await _sdk.read_promise(client, "one-trip")).id == "one-trip"
        finally:
            await client.stop()
    finally:
        await network._sessions.close()
    assert seen == {"drain": TransactionStatus.INTRANS, "request": TransactionStatus.IDLE}
