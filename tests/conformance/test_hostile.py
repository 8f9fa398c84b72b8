"""A hostile battery, against every adapter with the token policy on: zero 5xx, and every
error the routes answer is problem+json (a path or method nothing routes is the
framework's own 404/405)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.conformance.helpers import P
from tests.support.adapters import ADAPTERS

TOKEN = "hostile-battery-token"
OK = {"authorization": f"Bearer {TOKEN}"}
JSON = {**OK, "content-type": "application/json"}
ADD = f"{P}/functions/add"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    params: dict[str, str] = field(default_factory=dict)
    #: Nothing routes it: the framework's own 404/405 is fine.
    unrouted: bool = False


def body(name: str, content: bytes, path: str = ADD) -> Case:
    return Case(name, "POST", path, content)


CASES: list[Case] = [
    # malformed and truncated JSON, wrong shapes and types
    body("truncated object", b"{"),
    body("truncated array", b'{"args": [1, 2]'),
    body("not an object", b"[1, 2]"),
    body("a string", b'"add"'),
    body("null", b"null"),
    body("args not a list", b'{"args": "1,2"}'),
    body("kwargs not an object", b'{"kwargs": [1]}'),
    body("string for int", b'{"args": [1, "2"]}'),
    body("float for int", b'{"args": [1.5, 2]}'),
    body("bool for int", b'{"args": [true, 2]}'),
    body("null for int", b'{"args": [null, 2]}'),
    body("object for int", b'{"args": [{}, 2]}'),
    body("too many args", b'{"args": [1, 2, 3]}'),
    body("missing arg", b'{"args": [1]}'),
    body("unknown kwarg", b'{"kwargs": {"a": 1, "c": 2}}'),
    body("arg twice", b'{"args": [1, 2], "kwargs": {"a": 1}}'),
    body("unknown member", b'{"args": [1, 2], "a": 1}'),
    body("empty body", b""),
    # numbers
    body("overflowing float", b'{"args": [1e400, 2]}'),
    body("NaN", b'{"args": [NaN, 2]}'),
    body("Infinity", b'{"args": [Infinity, 2]}'),
    body("-Infinity", b'{"args": [-Infinity, 2]}'),
    body("huge integer", b'{"args": [' + b"9" * 4000 + b", 2]}"),
    body("negative huge integer", b'{"args": [-' + b"9" * 4000 + b", 2]}"),
    # keys, nesting, encoding
    body("duplicate keys", b'{"args": [1, 2], "args": [3, 4]}'),
    body("nesting 70", b'{"args": [' + b"[" * 70 + b"]" * 70 + b", 2]}"),
    body("nesting 100000", b'{"args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    body("invalid UTF-8", b'{"args": ["\xff\xfe", 2]}'),
    body("lone surrogate", b'{"args": ["\\ud800", 2]}'),
    body("raw control character", b'{"args": ["a\x01b", 2]}'),
    body("NUL in a string", b'{"args": ["a\\u0000b", 2]}'),
    body("BOM first", b'\xef\xbb\xbf{"args": [1, 2]}'),
    # content types and sizes
    Case("text/plain", "POST", ADD, b'{"args":[1,2]}', {**OK, "content-type": "text/plain"}),
    Case("no content type", "POST", ADD, b'{"args":[1,2]}', dict(OK)),
    Case("xml", "POST", ADD, b"<a/>", {**OK, "content-type": "application/xml"}),
    Case("form", "POST", ADD, b"a=1", {**OK, "content-type": "application/x-www-form-urlencoded"}),
    body("2 MiB body", b'{"args": ["' + b"x" * (2 << 20) + b'"]}'),
    # ids
    Case("id ..", "POST", ADD, b'{"args":[1,2]}', params={"id": ".."}),
    Case("id with slash", "POST", ADD, b'{"args":[1,2]}', params={"id": "a/b"}),
    Case("empty id", "POST", ADD, b'{"args":[1,2]}', params={"id": ""}),
    Case("id with NUL", "POST", ADD, b'{"args":[1,2]}', params={"id": "a\x00b"}),
    Case("id with newline", "POST", ADD, b'{"args":[1,2]}', params={"id": "a\nb"}),
    Case("id of 300 characters", "POST", ADD, b'{"args":[1,2]}', params={"id": "a" * 300}),
    Case("id starting with -", "POST", ADD, b'{"args":[1,2]}', params={"id": "-a"}),
    Case("id with colon", "POST", ADD, b'{"args":[1,2]}', params={"id": "a:1"}),
    Case("bad quoted key", "POST", ADD, b'{"args":[1,2]}', {**JSON, "idempotency-key": '"open'}),
    Case("key with space", "POST", ADD, b'{"args":[1,2]}', {**JSON, "idempotency-key": "a b"}),
    # path tricks
    Case("dot-dot id", "GET", f"{P}/invocations/%2e%2e", headers=dict(OK), unrouted=True),
    Case("traversal", "GET", f"{P}/invocations/..%2f..%2fetc", headers=dict(OK), unrouted=True),
    Case("space in id", "GET", f"{P}/invocations/a%20b", headers=dict(OK)),
    Case("NUL in id", "GET", f"{P}/invocations/a%00b", headers=dict(OK), unrouted=True),
    Case("name with space", "POST", f"{P}/functions/with%20space", b"{}"),
    Case("name ..", "POST", f"{P}/functions/%2e%2e", b"{}", unrouted=True),
    Case("promise ::", "GET", f"{P}/promises/a%3a%3a", headers=dict(OK)),
    Case("promise ..", "POST", f"{P}/promises/..%3a1/resolve", b'{"value":1}', unrouted=True),
    Case("settle member", "POST", f"{P}/promises/x:1/resolve", b'{"valu":1}'),
    Case("settle array", "POST", f"{P}/promises/x:1/reject", b"[]"),
    # wait
    *[
        Case(f"wait={w!r}", "GET", f"{P}/invocations/x", headers=dict(OK), params={"wait": w})
        for w in ["-1", "nan", "inf", "1e999", "abc", "", "0x10", " 1"]
    ],
    # list queries
    *[
        Case(f"list {q}", "GET", f"{P}/invocations", headers=dict(OK), params=q)
        for q in [
            {"limit": "-1"},
            {"limit": "1e3"},
            {"status": "all"},
            {"cursor": "garbage"},
            {"order": "asc"},
        ]
    ],
    # wrong methods
    Case("DELETE a function", "DELETE", ADD, headers=dict(OK), unrouted=True),
    Case("PUT an invocation", "PUT", f"{P}/invocations/x", headers=dict(OK), unrouted=True),
    Case("GET a start", "GET", ADD, headers=dict(OK), unrouted=True),
    # tokens of every kind
    Case("no token", "GET", f"{P}/functions", headers={}),
    Case("Bearer alone", "GET", f"{P}/functions", headers={"authorization": "Bearer"}),
    Case("Basic", "GET", f"{P}/functions", headers={"authorization": "Basic YTpi"}),
    Case("wrong token", "GET", f"{P}/functions", headers={"authorization": "Bearer nope"}),
    Case("token + junk", "GET", f"{P}/functions", headers={"authorization": f"Bearer {TOKEN}x"}),
    Case("token prefix", "GET", f"{P}/functions", headers={"authorization": f"Bearer {TOKEN[:5]}"}),
    Case("huge token", "GET", f"{P}/functions", headers={"authorization": "Bearer " + "a" * 6000}),
    Case("bare token", "GET", f"{P}/functions", headers={"authorization": TOKEN}),
]


def test_the_battery_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


def test_hostile_input_gets_no_5xx_and_only_problems(adapter: str) -> None:
    failures: list[str] = []
    with ADAPTERS[adapter](auth_token=TOKEN) as client:
        for case in CASES:
            try:
                response = client.request(
                    case.method,
                    case.path,
                    content=case.content,
                    headers=case.headers,
                    params=case.params or None,
                )
            except Exception as exc:  # the client itself may refuse to send some bytes
                if "Invalid" in type(exc).__name__ or isinstance(exc, ValueError):
                    continue
                raise
            status: int = response.status_code
            kind: Any = response.headers.get("content-type", "")
            if status >= 500:
                failures.append(f"{case.name}: {status} {response.text[:200]}")
            elif (
                status >= 400
                and not kind.startswith("application/problem+json")
                and not (case.unrouted and status in (400, 404, 405))
            ):
                failures.append(f"{case.name}: {status} {kind}")
    assert failures == []
