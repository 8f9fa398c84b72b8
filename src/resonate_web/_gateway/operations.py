"""Operating many invocations: rerun, bulk cancel and rerun, per-function statistics.

A rerun is a new invocation of the same function with the same (stored, bound)
arguments and tags, whose document names the one it reruns (``rerun_of``); the
old invocation is untouched. A bulk action is the list route's search (the
same filters, newest first, a page of at most ``limit``) with the single
route's action applied to each invocation found, under the same rules. The
statistics of a function over a window are one aggregate query where the
backend is Postgres, and one tag search, page by page, elsewhere.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from resonate.types import PromiseRecord

from resonate_web._core import flow, invocations
from resonate_web._core import sdk as _sdk
from resonate_web._core import search as _search
from resonate_web._core.parsing import idempotency_key, new_id, validate_id
from resonate_web._gateway import browse, settling
from resonate_web._gateway.contract import Request, Response, Service, scoped
from resonate_web.problems import Problem

#: ``limit`` of a bulk action: at most, and by default.
MAX_BULK = 1000
DEFAULT_BULK = 100
#: ``window`` of the statistics, in seconds: by default, and at most (30 days).
DEFAULT_WINDOW = 3600
MAX_WINDOW = 30 * 24 * 3600
#: Where the backend has no aggregate query: invocations read per search page.
STATS_PAGE = 1000
#: The statistics' window is cut into this many equal intervals (``buckets``).
BUCKETS = 30

Bulk = Literal["cancel", "rerun"]


# ── rerun ────────────────────────────────────────────────────────────────────


def _new_id(request: Request) -> str:
    header = request.headers.get("idempotency-key")
    if header is not None:
        return idempotency_key(header)
    query_id = request.query.get("id")
    if query_id is not None:
        return validate_id(query_id)
    return new_id()


async def rerun_record(
    gw: Service, id: str, record: PromiseRecord, new: str, *, scope: str = ""
) -> PromiseRecord:
    """Start stored invocation ``new``: a rerun of settled invocation ``id``
    (``record``), with its function, arguments and tags. 409 ``conflict`` while
    ``id`` is pending; 404 when its function is no longer exposed."""
    public = id.removeprefix(scope)
    if record.state == "pending":
        raise Problem("conflict", f"invocation {public!r} is still pending: cancel it first")
    call = invocations.call_of(record)
    if call is None:  # pragma: no cover - lookup() found a root invocation
        raise Problem("not-found", f"no invocation with id {public!r}")
    name, _version, args, kwargs = call
    exposed = gw.runtime.exposed.get(name)
    if exposed is None:
        raise Problem(
            "not-found",
            f"invocation {public!r} runs {name!r}, which is not exposed here: "
            "only an exposed function's invocation can be rerun",
        )
    started, _handle = await gw.begin(
        exposed,
        new,
        args,
        kwargs,
        owner=scope,
        tags=_search.user_tags(record.tags),
        rerun_of=id,
    )
    return started


async def rerun(gw: Service, request: Request) -> Response:
    """``POST /invocations/{id}/rerun``: 201 with the new invocation's document."""
    id, record = await gw.lookup(request)
    new = scoped(request.scope, _new_id(request))
    started = await rerun_record(gw, id, record, new, scope=request.scope)
    doc = await gw.document(request.prefix, new, started, request.scope)
    return Response(201, doc, headers={"Location": doc["links"]["self"]})


# ── bulk ─────────────────────────────────────────────────────────────────────


async def _act(gw: Service, action: Bulk, request: Request, record: PromiseRecord) -> str | None:
    """Apply ``action`` to ``record``: ``None`` once done, else why it was skipped."""
    try:
        if action == "cancel":
            if record.state == "pending":
                record = await settling.settle(gw, record.id, "cancel", None)
            settling.check(record, "cancel", "invocation", request.scope)
        else:
            await rerun_record(
                gw, record.id, record, scoped(request.scope, new_id()), scope=request.scope
            )
    except Problem as problem:
        if problem.slug == "backend-unavailable":
            raise
        return f"{problem.slug}: {problem.detail}"
    return None


async def bulk(gw: Service, action: Bulk, request: Request) -> Response:
    """``POST /invocations/cancel`` and ``/rerun``: the list route's filters (one at
    least), ``limit`` 1-1000 (default 100), newest first."""
    query = browse.parse_query(
        gw, request, max_limit=MAX_BULK, default_limit=DEFAULT_BULK, require_filter=True
    )
    promises, cursor = await browse.find(gw, query)
    done: list[str] = []
    skipped: list[dict[str, str]] = []
    matched = 0
    for record in promises:
        if not browse.shown(gw, request, query, record):
            continue
        matched += 1
        public = record.id.removeprefix(request.scope)
        reason = await _act(gw, action, request, record)
        if reason is None:
            done.append(public)
        else:
            skipped.append({"id": public, "reason": reason})
    body = {"matched": matched, "done": done, "skipped": skipped, "next": query.next(cursor)}
    return Response(200, body)


# ── statistics ───────────────────────────────────────────────────────────────


def _window(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_WINDOW
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WINDOW:
        raise Problem(
            "invalid-query", f"window is whole seconds from 1 to {MAX_WINDOW}, got {raw[:40]!r}"
        )
    return int(raw)


def _percentile(ordered: list[int], fraction: float) -> float:
    """The ``fraction`` percentile of ``ordered`` by linear interpolation (as
    PostgreSQL's ``percentile_cont``)."""
    at = fraction * (len(ordered) - 1)
    low = math.floor(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def summary(
    counts: dict[str, int], durations: list[int], buckets: dict[int, tuple[int, int]]
) -> _search.Stats:
    """Counts by status, settled durations (ms) and intervals' ``(started, failed)``
    as a backend's aggregate query answers them."""
    ordered = sorted(durations)
    duration = (
        {"p50": _percentile(ordered, 0.5), "p95": _percentile(ordered, 0.95), "max": ordered[-1]}
        if ordered
        else None
    )
    return counts, {k: float(v) for k, v in duration.items()} if duration else None, buckets


@dataclass(frozen=True)
class Window:
    """The statistics' window: from ``since`` (unix ms), ``count`` intervals of
    ``width`` ms (the last one reaching now)."""

    seconds: int
    since: int
    width: int
    count: int = BUCKETS

    @classmethod
    def ending(cls, now: int, seconds: int) -> Window:
        return cls(seconds, now - seconds * 1000, -(-seconds * 1000 // BUCKETS))

    def bucket(self, created_at: int) -> int:
        return min((created_at - self.since) // self.width, self.count - 1)


def aggregate(stats: _search.Stats, window: Window) -> dict[str, Any]:
    """The statistics document's ``counts``, ``duration_ms``, ``failure_rate`` and
    ``buckets``."""
    counts, duration, buckets = stats
    shown = {status: int(counts.get(status, 0)) for status in _STATUSES}
    settled = sum(shown.values()) - shown["pending"]
    failed = shown["rejected"] + shown["timedout"]
    return {
        "counts": shown,
        "duration_ms": {k: round(v, 3) for k, v in duration.items()} if duration else None,
        "failure_rate": round(failed / settled, 6) if settled else None,
        "buckets": [
            {
                "start": invocations.iso(window.since + n * window.width),
                "started": buckets.get(n, (0, 0))[0],
                "failed": buckets.get(n, (0, 0))[1],
            }
            for n in range(window.count)
        ],
    }


_STATUSES = ("pending", "resolved", "rejected", "canceled", "timedout")


async def _by_search(
    gw: Service, tags: dict[str, str], window: Window, scope: str
) -> _search.Stats:
    """The statistics from the function's tag search, newest first, page by page,
    stopping at the first invocation older than the window."""
    counts = dict.fromkeys(_STATUSES, 0)
    durations: list[int] = []
    buckets: dict[int, tuple[int, int]] = {}
    cursor = None
    now = int(time.time() * 1000)
    while True:
        found = await gw.bounded(gw.runtime.client.promises.search(None, tags, STATS_PAGE, cursor))
        for record in found.promises:
            if record.created_at < window.since:
                return summary(counts, durations, buckets)
            if not record.id.startswith(scope):
                continue
            status = invocations.status_of(record)
            if status == "pending" and record.timeout_at <= now:
                status = "timedout"
            counts[status] += 1
            if status != "pending":
                end = record.settled_at or record.timeout_at
                durations.append(max(0, end - record.created_at))
            n = window.bucket(record.created_at)
            started, failed = buckets.get(n, (0, 0))
            buckets[n] = (started + 1, failed + (status in ("rejected", "timedout")))
        cursor = found.cursor
        if not cursor:
            return summary(counts, durations, buckets)


async def stats(gw: Service, request: Request) -> Response:
    """``GET /functions/{name}/stats?window=SECONDS``."""
    unknown = sorted(set(request.query) - {"window"})
    if unknown:
        raise Problem("invalid-query", f"unknown parameter(s) {', '.join(map(repr, unknown))}")
    exposed = gw.runtime.function(request.path_params["name"])
    window = Window.ending(int(time.time() * 1000), _window(request.query.get("window")))
    tags = {_search.FUNCTION_TAG: exposed.name}
    if request.scope:
        tags[_search.OWNER_TAG] = request.scope
    answered = await gw.bounded(
        _sdk.function_stats(gw.runtime.client, tags, window.since, window.width, window.count)
    )
    if answered is None:
        answered = await _by_search(gw, tags, window, request.scope)
    body = aggregate(answered, window)
    if exposed.flow:
        # Now, not over the window: the line as it stands.
        _, lines = await gw.bounded(flow.waiting(gw.runtime.client, [exposed.name]))
        body["flow"] = lines.get(exposed.name)
    return Response(200, {"function": exposed.name, "window": window.seconds, **body})
