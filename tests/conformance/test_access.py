"""Access control on every adapter: the token and JWT policies, and per-principal ids."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import jwt
import pytest

from tests.conformance.helpers import P, assert_problem
from tests.support.adapters import ADAPTERS

TOKEN = "s3cret-token-for-tests"
KEY = "a-long-enough-hmac-secret-for-the-tests"
JSON = {"content-type": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def token_for(prefix: str | None = None, **claims: Any) -> str:
    body: dict[str, Any] = {"sub": "tester", "exp": int(time.time()) + 600, **claims}
    if prefix is not None:
        body["prefix"] = prefix
    return jwt.encode(body, KEY, algorithm="HS256")


def assert_401(response: Any) -> None:
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


# ── the static token ─────────────────────────────────────────────────────────


@pytest.fixture
def token_client(adapter: str) -> Iterator[httpx.Client]:
    with ADAPTERS[adapter](auth_token=TOKEN) as client:
        yield client


def test_a_static_token_guards_every_route_but_health(token_client: httpx.Client) -> None:
    client = token_client
    assert client.get(f"{P}/health").status_code == 200
    for method, path in [
        ("GET", f"{P}/functions"),
        ("POST", f"{P}/functions/add"),
        ("GET", f"{P}/invocations/x"),
        ("GET", f"{P}/invocations/x/events"),
        ("GET", f"{P}/invocations"),
        ("GET", f"{P}/invocations/x/tree"),
        ("POST", f"{P}/invocations/x/cancel"),
        ("POST", f"{P}/invocations/x/rerun"),
        ("POST", f"{P}/invocations/cancel?function=add"),
        ("POST", f"{P}/invocations/rerun?function=add"),
        ("GET", f"{P}/functions/add/stats"),
        ("GET", f"{P}/promises/x:1"),
        ("POST", f"{P}/promises/x:1/resolve"),
        ("GET", f"{P}/openapi.json"),
    ]:
        assert_401(client.request(method, path))
        assert_401(client.request(method, path, headers=bearer("wrong")))
        assert_401(client.request(method, path, headers={"authorization": TOKEN}))
    ok = client.post(
        f"{P}/functions/add?wait=5", content=b'{"args":[1,2]}', headers={**JSON, **bearer(TOKEN)}
    )
    assert ok.status_code == 200 and ok.json()["result"] == 3
    assert client.get(f"{P}/functions", headers=bearer(TOKEN)).status_code == 200


def test_nothing_starts_without_the_token(token_client: httpx.Client, uid: str) -> None:
    client = token_client
    assert_401(client.post(f"{P}/functions/add?id={uid}", content=b'{"args":[1,2]}', headers=JSON))
    assert_problem(client.get(f"{P}/invocations/{uid}", headers=bearer(TOKEN)), 404, "not-found")


# ── JWTs ─────────────────────────────────────────────────────────────────────


JWT_SETTINGS = {
    "auth_jwt_key": KEY,
    "auth_jwt_algorithms": "HS256",
    "auth_jwt_audience": "resonate-web",
    "auth_jwt_issuer": "tests",
}


@pytest.fixture(scope="module")
def jwt_apps() -> Iterator[dict[str, httpx.Client]]:
    """One app per adapter with the JWT policy, shared by this module's tests (a real
    server takes a while to start)."""
    with ExitStack() as stack:
        yield _Lazy(stack)


class _Lazy(dict[str, httpx.Client]):
    def __init__(self, stack: ExitStack) -> None:
        super().__init__()
        self.stack = stack

    def __missing__(self, adapter: str) -> httpx.Client:
        client: httpx.Client = self.stack.enter_context(ADAPTERS[adapter](**JWT_SETTINGS))
        self[adapter] = client
        return client


@pytest.fixture
def jwt_client(adapter: str, jwt_apps: dict[str, httpx.Client]) -> httpx.Client:
    return jwt_apps[adapter]


def _good(**claims: Any) -> dict[str, Any]:
    return {"aud": "resonate-web", "iss": "tests", **claims}


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("expired", lambda: token_for(**_good(exp=int(time.time()) - 60))),
        ("not yet valid", lambda: token_for(**_good(nbf=int(time.time()) + 600))),
        ("no expiry", lambda: jwt.encode(_good(sub="x"), KEY, algorithm="HS256")),
        ("wrong audience", lambda: token_for(aud="elsewhere", iss="tests")),
        ("wrong issuer", lambda: token_for(aud="resonate-web", iss="mallory")),
        ("wrong key", lambda: jwt.encode(_good(exp=int(time.time()) + 60), "x" * 40)),
        (
            "another algorithm",
            lambda: jwt.encode(_good(exp=int(time.time()) + 60), KEY, algorithm="HS512"),
        ),
        ("alg none", lambda: jwt.encode(_good(exp=int(time.time()) + 60), None, algorithm="none")),
        ("garbage", lambda: "not.a.jwt"),
        ("a JWT with its signature cut", lambda: token_for(**_good()).rsplit(".", 1)[0] + "."),
    ],
)
def test_bad_tokens_are_401(jwt_client: httpx.Client, name: str, token: Any) -> None:
    assert_401(jwt_client.get(f"{P}/functions", headers=bearer(token())))


def test_a_valid_token_passes_and_a_bad_prefix_claim_is_403(jwt_client: httpx.Client) -> None:
    assert jwt_client.get(f"{P}/functions", headers=bearer(token_for(**_good()))).status_code == 200
    bad = token_for(**_good(prefix="has/slash"))
    assert_problem(jwt_client.get(f"{P}/functions", headers=bearer(bad)), 403, "forbidden")
    wrong_type = token_for(**_good(prefix=["a"]))
    assert_problem(jwt_client.get(f"{P}/functions", headers=bearer(wrong_type)), 403, "forbidden")


# ── two principals, every route ──────────────────────────────────────────────


def test_principals_never_see_each_others_work(jwt_client: httpx.Client, uid: str) -> None:
    client = jwt_client
    alice = bearer(token_for(**_good(prefix="alice-")))
    bob = bearer(token_for(**_good(prefix="bob-")))

    def post(path: str, body: Any, who: dict[str, str]) -> Any:
        return client.post(f"{P}{path}", content=json.dumps(body).encode(), headers={**JSON, **who})

    mine = post(f"/functions/add?id={uid}&wait=5", {"args": [1, 2]}, alice)
    assert mine.status_code == 200
    doc = mine.json()
    assert doc["id"] == uid and doc["links"]["self"] == f"{P}/invocations/{uid}"
    assert client.get(f"{P}/invocations/{uid}", headers=alice).json()["result"] == 3
    # Bob: the same id is not Alice's invocation, on every route that reads it.
    assert_problem(client.get(f"{P}/invocations/{uid}", headers=bob), 404, "not-found")
    assert_problem(client.get(f"{P}/invocations/{uid}/events", headers=bob), 404, "not-found")
    assert_problem(client.get(f"{P}/invocations/{uid}/tree", headers=bob), 404, "not-found")
    assert_problem(client.post(f"{P}/invocations/{uid}/cancel", headers=bob), 404, "not-found")
    # Bob's start with the same id and another call is his own invocation, not a reuse.
    theirs = post(f"/functions/add?id={uid}&wait=5", {"args": [5, 5]}, bob)
    assert theirs.status_code == 200 and theirs.json()["result"] == 10
    assert client.get(f"{P}/invocations/{uid}", headers=alice).json()["result"] == 3
    # Lists: each sees their own.
    alice_list = client.get(f"{P}/invocations?function=add&limit=100", headers=alice).json()
    bob_list = client.get(f"{P}/invocations?function=add&limit=100", headers=bob).json()
    assert [d["result"] for d in alice_list["invocations"] if d["id"] == uid] == [3]
    assert [d["result"] for d in bob_list["invocations"] if d["id"] == uid] == [10]
    # A promise Alice's invocation awaits: Bob can neither read nor settle it.
    waiting = post(f"/functions/approval?id={uid}-ap&wait=1", {"args": ["?"]}, alice).json()
    for _ in range(200):
        if waiting.get("awaiting"):
            break
        waiting = client.get(f"{P}/invocations/{uid}-ap?wait=0.1", headers=alice).json()
    (promise,) = waiting["awaiting"]
    assert promise == f"{uid}-ap:1"
    assert_problem(client.get(f"{P}/promises/{promise}", headers=bob), 404, "not-found")
    assert_problem(post(f"/promises/{promise}/resolve", {"value": "bob"}, bob), 404, "not-found")
    settled = post(f"/promises/{promise}/resolve", {"value": "alice"}, alice)
    assert settled.status_code == 200 and settled.json()["awaited_by"] == f"{uid}-ap"
    assert client.get(f"{P}/invocations/{uid}-ap?wait=5", headers=alice).json()["result"] == (
        "alice"
    )


def test_principals_rerun_cancel_and_count_only_their_own(
    jwt_client: httpx.Client, uid: str
) -> None:
    client = jwt_client
    alice = bearer(token_for(**_good(prefix=f"a{uid}-")))
    bob = bearer(token_for(**_good(prefix=f"b{uid}-")))

    def post(path: str, who: dict[str, str], body: Any = None) -> Any:
        content = b"" if body is None else json.dumps(body).encode()
        return client.post(f"{P}{path}", content=content, headers={**JSON, **who})

    tagged = {"args": ["no"], "tags": {"team": "t"}}
    assert post(f"/functions/fail?id={uid}&wait=5", alice, tagged).json()["status"] == "rejected"
    slow = {"args": [30, "x"], "tags": {"team": "t"}}
    assert post(f"/functions/slow?id={uid}-s", bob, slow).status_code == 202
    # Bob can neither rerun Alice's invocation nor reach it in bulk.
    assert_problem(post(f"/invocations/{uid}/rerun", bob), 404, "not-found")
    bulk = post("/invocations/rerun?tag=team:t", bob).json()
    assert bulk["done"] == [] and [s["id"] for s in bulk["skipped"]] == [f"{uid}-s"]
    assert post("/invocations/cancel?tag=team:t", alice).json()["matched"] == 1  # her own
    # Alice's rerun is hers, shown with her ids.
    rerun = post(f"/invocations/{uid}/rerun?id={uid}-r", alice)
    assert rerun.status_code == 201 and rerun.json()["rerun_of"] == uid
    assert rerun.json()["id"] == f"{uid}-r"
    assert_problem(client.get(f"{P}/invocations/{uid}-r", headers=bob), 404, "not-found")
    # Statistics count each one's own.
    mine = client.get(f"{P}/functions/fail/stats", headers=alice).json()["counts"]
    theirs = client.get(f"{P}/functions/fail/stats", headers=bob).json()["counts"]
    assert mine["rejected"] >= 1 and sum(theirs.values()) == 0
    cancel = post("/invocations/cancel?tag=team:t", bob).json()
    assert cancel["done"] == [f"{uid}-s"]
