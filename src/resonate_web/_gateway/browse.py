"""Seeing your work: the list of invocations, an invocation's tree, what it awaits.

Each answer is one search of the backend (``promise.search`` by tags, newest
first; see :mod:`resonate_web._core.search`), never a read of ids one by one: the
roots resonate-web starts carry its invocation and function tags, and every
durable step of an invocation carries the SDK's ``resonate:origin`` (the
invocation) and ``resonate:parent`` (the step that made it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from resonate.types import PromiseRecord

from resonate_web._core import flow, invocations
from resonate_web._core import sdk as _sdk
from resonate_web._core import search as _search
from resonate_web._core.parsing import validate_id, validate_tags
from resonate_web._gateway.contract import Request, Response, Service
from resonate_web.problems import Problem
from resonate_web.settings import did_you_mean

#: Largest ``limit`` of ``GET /invocations`` (and its default).
MAX_LIST = 100
DEFAULT_LIST = 20
#: Steps read for one tree: pages of the search, at most this many in all.
TREE_PAGE = 500
MAX_TREE = 5000

_STATES = {
    "pending": "pending",
    "resolved": "resolved",
    "rejected": "rejected",
    "canceled": "rejected_canceled",
    "timedout": "rejected_timedout",
}
_QUERY = {"function", "status", "schedule", "tag", "limit", "cursor", "waiting_for"}


def _invalid(detail: str) -> Problem:
    return Problem("invalid-query", detail)


# ── GET /invocations ────────────────────────────────────────────────────────


def _limit(raw: str | None, most: int = MAX_LIST, default: int = DEFAULT_LIST) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise _invalid(f"limit is a whole number from 1 to {most}, got {raw!r}")
    return int(raw)


def _cursor(raw: str) -> dict[str, Any]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid("cursor is not one this API returned") from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("c"), str):
        raise _invalid("cursor is not one this API returned")
    return decoded


def _next(backend_cursor: str | None, filters: dict[str, str]) -> str | None:
    if not backend_cursor:
        return None
    data = json.dumps({"c": backend_cursor, **filters}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode()


@dataclass(frozen=True)
class Query:
    """A listing's filters, checked: the search to ask the backend, and how to
    read and continue its answer."""

    state: str | None
    tags: dict[str, str]
    function: str | None
    limit: int
    cursor: str | None
    filters: dict[str, Any]
    #: Only invocations waiting for this flow control (``concurrency``, ``rate``, ``debounce``).
    waiting_for: str | None = None

    def next(self, backend_cursor: str | None) -> str | None:
        """The cursor that continues this query after ``backend_cursor``."""
        return _next(backend_cursor, self.filters)


def tag_filter(raw: str) -> tuple[str, str]:
    """``key:value`` as a tag to match (a key as the start route's rules have it)."""
    key, colon, value = raw.partition(":")
    if not colon:
        raise _invalid(f"tag is key:value, got {raw[:80]!r}")
    try:
        validate_tags({key: value})
    except Problem as problem:
        raise _invalid(problem.detail) from None
    return key, value


def parse_query(
    gw: Service,
    request: Request,
    *,
    max_limit: int = MAX_LIST,
    default_limit: int = DEFAULT_LIST,
    require_filter: bool = False,
) -> Query:
    """The list route's filters (``function``, ``status``, ``schedule``, ``tag``
    repeatable, ``limit``, ``cursor``), or 400 ``invalid-query``."""
    query = request.query
    unknown = sorted(set(query) - _QUERY)
    if unknown:
        raise _invalid(f"unknown parameter(s) {', '.join(map(repr, unknown))}")
    limit = _limit(query.get("limit"), max_limit, default_limit)
    filters: dict[str, Any] = {
        k: query[k] for k in ("function", "status", "schedule") if k in query
    }
    matched: dict[str, str] = {}
    for key, value in map(tag_filter, request.tag_filters):
        if matched.setdefault(key, value) != value:
            raise _invalid(f"tag {key!r} is given twice with different values: none could match")
    if request.tag_filters:
        filters["tag"] = list(request.tag_filters)
    if require_filter and not filters:
        raise _invalid("name the invocations: at least one of function, status, tag, schedule")
    backend_cursor = None
    if query.get("cursor"):  # an empty cursor= is no cursor: the first page
        resumed = _cursor(query["cursor"])
        backend_cursor = resumed.pop("c")
        if any(filters.get(k) != v for k, v in resumed.items()) or set(filters) - set(resumed):
            raise _invalid("a cursor continues the query it came from: send the same filters")
    function = filters.get("function")
    exposed = gw.runtime.listed
    if function is not None and function not in exposed:
        raise _invalid(
            f"no function named {function!r} is exposed{did_you_mean(function, exposed)}"
        )
    status = filters.get("status")
    if status is not None and status not in _STATES:
        raise _invalid(f"status is one of {', '.join(_STATES)}, got {status!r}")
    if "schedule" in filters:
        # Ticks are created by the backend (or its ticker), tagged with their schedule
        # alone: the function filter applies to what the search finds.
        tags = {_search.SCHEDULE_TAG: validate_id(filters["schedule"], what="schedule")}
    else:
        tags = {_search.FUNCTION_TAG: function} if function else {_search.INVOCATION_TAG: "true"}
        if request.scope:
            tags[_search.OWNER_TAG] = request.scope
    tags.update(_search.stored_tags(matched))
    state = _STATES[status] if status else None
    waiting_for = query.get("waiting_for")
    if waiting_for is not None:
        if waiting_for not in flow.WAITING_FOR:
            raise _invalid(
                f"waiting_for is one of {', '.join(flow.WAITING_FOR)}, got {waiting_for!r}"
            )
        if status not in (None, "pending"):
            raise _invalid("an invocation waiting for flow control is pending: drop status")
        if backend_cursor is not None:
            raise _invalid("a waiting_for listing is one page, in line order: it has no cursor")
    return Query(state, tags, function, limit, backend_cursor, filters, waiting_for)


def shown(gw: Service, request: Request, query: Query, record: PromiseRecord) -> bool:
    """Whether a record a listing's search found is one the caller may see."""
    function = invocations.function_of(record)
    return (
        function in gw.runtime.listed
        and record.id.startswith(request.scope)
        and (query.function is None or function == query.function)
    )


async def _in_line(gw: Service, q: Query) -> list[PromiseRecord]:
    """The invocations waiting for ``q.waiting_for``, in line order (first to run
    first), matching the query's other filters: the flow state names them, and
    each is read (at most ``q.limit``)."""
    listed = gw.runtime.listed
    names = [
        name
        for name, exposed in listed.items()
        if exposed.flow and (q.function is None or name == q.function)
    ]
    found, _ = await gw.bounded(flow.waiting(gw.runtime.client, names))
    ids = [id for id, reason in found.items() if reason == q.waiting_for]
    records = []
    for id in ids:
        record = await gw.read(id)
        if (
            record is not None
            and record.state == "pending"
            and all(record.tags.get(k) == v for k, v in q.tags.items())
        ):
            records.append(record)
            if len(records) == q.limit:
                break
    return records


async def find(gw: Service, q: Query) -> tuple[list[PromiseRecord], str | None]:
    """One page of what query ``q`` finds, and the backend's cursor after it."""
    if q.waiting_for is not None:
        return await _in_line(gw, q), None
    found = await gw.bounded(gw.runtime.client.promises.search(q.state, q.tags, q.limit, q.cursor))
    return list(found.promises), found.cursor


async def list_invocations(gw: Service, request: Request) -> Any:
    q = parse_query(gw, request)
    promises, cursor = await find(gw, q)
    promises = [r for r in promises if shown(gw, request, q, r)]
    pending = [r.id for r in promises if r.state == "pending"]
    failed = dict(
        zip(
            pending,
            await asyncio.gather(*map(functools.partial(last_failure, gw), pending)),
            strict=True,
        )
    )
    waiting = await gw.waiting_for([r for r in promises if r.state == "pending"])
    docs = [
        invocations.document(
            r,
            public_id=r.id.removeprefix(request.scope),
            self_link=gw.link(request.prefix, r.id.removeprefix(request.scope)),
            failure=failure_fields(failed.get(r.id), request.scope),
            scope=request.scope,
            waiting_for=waiting.get(r.id),
        )
        for r in promises
    ]
    return Response(200, {"invocations": docs, "next": q.next(cursor)})


# ── the lineage: tree and awaiting ──────────────────────────────────────────


async def awaiting(gw: Service, id: str) -> list[str]:
    """Pending promises of invocation ``id`` that someone outside must settle."""
    tags = {"resonate:origin": id, _sdk.EXTERNAL_TAG: "true"}
    found = await gw.bounded(gw.runtime.client.promises.search("pending", tags, 100, None))
    return sorted(
        (p.id for p in found.promises if p.id != id and invocations.is_external(p)),
        key=_step_order,
    )


async def failures(gw: Service, id: str, limit: int = 1) -> dict[str | None, dict[str, Any]]:
    """The newest recorded failure of each failing part of invocation ``id`` (its
    function: ``None``; a step: its id), as the worker that ran it wrote it, from
    the newest ``limit`` records (one search)."""
    tags = {_search.FAILURE_TAG: id}
    found = await gw.bounded(gw.runtime.client.promises.search(None, tags, limit, None))
    newest: dict[str | None, dict[str, Any]] = {}
    for record in found.promises:
        data = record.param.data  # the search decodes what it finds
        if isinstance(data, dict) and isinstance(data.get("attempts"), int):
            newest.setdefault(data.get("step"), data)
    return newest


def failure_fields(found: dict[str, Any] | None, scope: str) -> dict[str, Any]:
    """``attempts`` and ``last_error`` (contract v3) from a recorded failure."""
    if not found:
        return {}
    step = found.get("step")
    return {
        "attempts": found["attempts"],
        "last_error": {
            "type": str(found.get("type") or "Error"),
            "message": str(found.get("message") or ""),
            "step": step.removeprefix(scope) if isinstance(step, str) else None,
            "at": invocations.iso(found.get("at")),
            "next_attempt_at": invocations.iso(found.get("next_attempt_at")),
        },
    }


async def last_failure(gw: Service, id: str) -> dict[str, Any] | None:
    """The newest recorded failure of any part of invocation ``id``."""
    found = await failures(gw, id)
    return next(iter(found.values()), None)


def _step_order(id: str) -> tuple[int, ...]:
    tail = id.rsplit(":", 1)[-1]
    return tuple(int(part) if part.isdigit() else 0 for part in tail.split("."))


async def _lineage(gw: Service, id: str) -> tuple[list[PromiseRecord], bool]:
    """Every durable step of invocation ``id`` (pages of one search); and whether the
    tree was cut at :data:`MAX_TREE` steps."""
    steps: list[PromiseRecord] = []
    cursor = None
    while True:
        found = await gw.bounded(
            gw.runtime.client.promises.search(None, {"resonate:origin": id}, TREE_PAGE, cursor)
        )
        steps.extend(p for p in found.promises if p.id != id)
        cursor = found.cursor
        if not cursor:
            return steps, False
        if len(steps) >= MAX_TREE:
            return steps, True


def _kind(record: PromiseRecord) -> str:
    if record.tags.get("resonate:timer") == "true":
        return "sleep"
    if invocations.is_external(record) and "resonate:target" not in record.tags:
        return "promise"
    return "call"


def values_of(record: PromiseRecord, kind: str) -> dict[str, Any]:
    """A node's values (``?values=true``): a call's ``args`` and ``kwargs`` where they
    are stored (a root's and a ``ctx.rpc``'s param holds its call; a ``ctx.run``
    step's, its arguments as resonate-web records them), and a settled call's or
    promise's ``result`` or ``error``; none for a sleep."""
    found: dict[str, Any] = {}
    data = record.param.data
    if kind == "call" and isinstance(data, dict):
        args, kwargs = data.get("args"), data.get("kwargs")
        if isinstance(args, list) or isinstance(kwargs, dict):
            found["args"] = args if isinstance(args, list) else []
            found["kwargs"] = kwargs if isinstance(kwargs, dict) else {}
    if kind == "sleep":
        return found
    status = invocations.status_of(record)
    if status == "resolved":
        found["result"] = record.value.data
    elif status == "rejected":
        found["error"] = invocations.error_of(record.value.data)
    return found


def _node(
    record: PromiseRecord,
    children: dict[str, list[PromiseRecord]],
    scope: str,
    failed: dict[str, dict[str, Any]],
    values: bool,
    kind: str | None = None,
) -> dict[str, Any]:
    kind = kind or _kind(record)
    node: dict[str, Any] = {"id": record.id.removeprefix(scope), "kind": kind}
    if kind == "call":
        node["function"] = invocations.function_of(record) or record.tags.get(_search.STEP_TAG)
    node["status"] = invocations.status_of(record)
    node["created_at"] = invocations.iso(record.created_at)
    if record.state != "pending":
        node["settled_at"] = invocations.iso(record.settled_at)
    else:
        node.update(failure_fields(failed.get(record.id), scope))
    if values:
        node.update(values_of(record, kind))
    node["children"] = [
        _node(c, children, scope, failed, values) for c in _ordered(children.get(record.id, []))
    ]
    return node


def _ordered(records: list[PromiseRecord]) -> Iterator[PromiseRecord]:
    return iter(sorted(records, key=lambda r: (r.created_at, _step_order(r.id))))


_FLAGS = {"true": True, "false": False, "1": True, "0": False}


def _values_flag(request: Request) -> bool:
    raw = request.query.get("values")
    if raw is None:
        return False
    if raw not in _FLAGS:
        raise _invalid(f"values is true or false, got {raw[:40]!r}")
    return _FLAGS[raw]


async def tree(gw: Service, request: Request) -> Any:
    values = _values_flag(request)
    id, root = await gw.lookup(request)
    steps, truncated = await _lineage(gw, id)
    known = {id} | {step.id for step in steps}
    children: dict[str, list[PromiseRecord]] = {}
    for step in steps:
        parent = step.tags.get("resonate:parent", id)
        if parent not in known or parent == step.id:
            parent = id  # a step whose parent is not stored hangs off the root
        children.setdefault(parent, []).append(step)
    failed: dict[str, dict[str, Any]] = {}
    if root.state == "pending":
        for part, found in (await failures(gw, id, TREE_PAGE)).items():
            failed[part or id] = found
    body = _node(root, children, request.scope, failed, values, kind="call")
    body["function"] = invocations.function_of(root)
    if truncated:
        body["truncated"] = True
    return Response(200, body)
