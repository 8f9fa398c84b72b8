"""dispatch(): inside transaction.atomic() an invocation starts on commit, never on rollback.

A real database (sqlite) and the real embedded backend; ``orders_seen`` reads the
database from the durable function, as a worker would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.django_app import setup

setup()

from django.db import connection, transaction  # noqa: E402

from resonate_web import Problem  # noqa: E402
from resonate_web.django import async_client, client, dispatch  # noqa: E402
from tests.conformance.helpers import status as get_status  # noqa: E402
from tests.support.django_clients import wsgi_client  # noqa: E402
from tests.support.django_functions import ORDERS  # noqa: E402


class Rollback(Exception):
    pass


def status(http: httpx.Client, id: str, wait: float | None = None) -> httpx.Response:
    """GET the invocation from another thread.

    The WSGI handler closes the calling thread's database connections when a
    request finishes, which would end a transaction the test holds open.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(get_status, http, id, wait).result()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {ORDERS} (order_key TEXT)")
    with wsgi_client() as c:
        yield c
    connection.close()


@pytest.fixture
def key() -> str:
    return "o-" + uuid.uuid4().hex


def insert(key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {ORDERS} (order_key) VALUES (%s)", [key])


def test_committed_transaction_starts_the_invocation_after_commit(
    http: httpx.Client, key: str
) -> None:
    with transaction.atomic():
        insert(key)
        id = dispatch("orders_seen", key)
        assert status(http, id).status_code == 404  # not before the commit
    doc = status(http, id, wait=5).json()
    assert doc["status"] == "resolved" and doc["result"] == 1  # and it saw the row


def test_rolled_back_transaction_dispatches_nothing(http: httpx.Client, key: str) -> None:
    with contextlib.suppress(Rollback), transaction.atomic():
        insert(key)
        dispatch("orders_seen", key, id=key)
        raise Rollback
    assert status(http, key, wait=0.5).status_code == 404
    assert client().run("check-" + key, "orders_seen", key).result(timeout=5) == 0


def test_rolled_back_savepoint_discards_its_dispatch(http: httpx.Client, key: str) -> None:
    with transaction.atomic():
        inner = key + "-inner"
        with contextlib.suppress(Rollback), transaction.atomic():
            dispatch("ping", id=inner)
            raise Rollback
        outer = dispatch("ping", id=key + "-outer")
    assert status(http, inner).status_code == 404
    assert status(http, outer, wait=5).json()["result"] == "pong"


def test_on_commit_false_starts_at_once(http: httpx.Client, key: str) -> None:
    with transaction.atomic():
        dispatch("add", 1, 2, id=key, on_commit=False)
        assert status(http, key, wait=5).json()["result"] == 3


def test_outside_a_transaction_it_starts_at_once(http: httpx.Client, key: str) -> None:
    assert dispatch("add", a=2, b=2, id=key) == key
    assert status(http, key, wait=5).json()["result"] == 4


def test_tags_go_with_the_invocation_and_are_checked_at_once(http: httpx.Client, key: str) -> None:
    with transaction.atomic():
        with pytest.raises(Problem) as bad:
            dispatch("add", 1, 2, id=key, tags={"x": 1})  # type: ignore[dict-item]
        assert bad.value.slug == "invalid-tags"
        dispatch("add", 1, 2, id=key, tags={"order": key})
    assert status(http, key, wait=5).json()["tags"] == {"order": key}
    listed = http.get("/resonate/invocations", params={"tag": f"order:{key}"}).json()
    assert [doc["id"] for doc in listed["invocations"]] == [key]


def test_generated_ids_are_unguessable(http: httpx.Client) -> None:
    first, second = dispatch("ping"), dispatch("ping")
    assert first != second and len(first) >= 31


def test_bad_calls_fail_at_once_even_inside_a_transaction(http: httpx.Client, key: str) -> None:
    with transaction.atomic():
        with pytest.raises(Problem) as info:
            dispatch("add", 1, "x", id=key)
        assert info.value.slug == "invalid-arguments"
        with pytest.raises(Problem, match="id must be"):
            dispatch("add", 1, 2, id="a..b")
        with pytest.raises(Problem) as unknown:
            dispatch("nope")
        assert unknown.value.slug == "unknown-function"
    assert status(http, key).status_code == 404


def test_replay_is_one_invocation(http: httpx.Client, key: str) -> None:
    dispatch("count", key, id=key)
    dispatch("count", key=key, id=key)
    assert status(http, key, wait=5).json()["result"] == 1


def test_the_same_invocation_over_http_is_a_replay(http: httpx.Client, key: str) -> None:
    dispatch("add", 2, 3, id=key)
    again = http.post(
        f"/resonate/functions/add?id={key}&wait=5",
        json={"kwargs": {"a": 2, "b": 3}},
    )
    assert again.status_code == 200 and again.json()["result"] == 5


def test_client_for_sync_views(http: httpx.Client, key: str) -> None:
    handle = client().run(key, "add", 20, 22)
    assert handle.result(timeout=5) == 42 and handle.done()
    assert client().get(key).result(timeout=5) == 42


async def test_client_for_async_views(http: httpx.Client, key: str) -> None:
    handle = await async_client().run(key, "slow", 0.1, "async")
    assert await asyncio.wait_for(handle.result(), 5) == "async"
