"""Promise search, and the tags that make invocations findable.

The Resonate protocol's ``promise.search`` finds promises by state and tags,
newest first, a page at a time. The Resonate server answers it; the backends
resonate-web runs on here do not (the SDK's in-process state machine, and so
the dev server, lack it; resonate-pg answers 501), so this module answers it
for them: over the records an in-memory backend holds, and as one SQL query
for Postgres. The routes then ask every backend the same question through the
SDK's public ``client.promises.search``.

Root invocations are found by tags the SDK does not set: every root promise a
resonate-web process creates carries :data:`INVOCATION_TAG` and
:data:`FUNCTION_TAG` (added on its way to the backend, see
:func:`tag_root_create`), so ``GET /invocations?function=add`` is one search,
not a scan of ids.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import itertools
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

#: On every root invocation resonate-web starts: ``"true"``.
INVOCATION_TAG = "resonate-web:invocation"
#: On every root invocation resonate-web starts: the function's name.
FUNCTION_TAG = "resonate-web:function"
#: On a schedule's ticks: the schedule's id (the Resonate server's tag, which
#: resonate-web's ticker and resonate-pg's stored tags set too).
SCHEDULE_TAG = "resonate:schedule"
#: On a root invocation started for a caller with an id prefix: the prefix.
OWNER_TAG = "resonate-web:owner"

#: On a failure record (a promise resonate-web writes when an attempt of a function
#: or a step fails): the id of the invocation it belongs to. Its param holds the
#: attempt count and the error; the newest is the invocation's ``last_error``.
FAILURE_TAG = "resonate-web:failure-of"

#: On a root invocation a launch created: that launch's nonce. A create answers
#: with the stored record, so the nonce tells a record this launch created from
#: one that was there already (a replay, or another request's).
LAUNCH_TAG = "resonate-web:launch"

#: A user's tag ``key`` (contract v3) is stored as ``USER_TAG + key``: apart from the
#: internal ones, and shown back without the prefix.
USER_TAG = "resonate-web:tag:"
#: On a root invocation started by a rerun: the stored id of the invocation it reruns.
RERUN_TAG = "resonate-web:rerun-of"


def stored_tags(tags: dict[str, str]) -> dict[str, str]:
    """A user's tags as the backend stores them."""
    return {USER_TAG + k: v for k, v in tags.items()}


def user_tags(tags: dict[str, str]) -> dict[str, str]:
    """The user's tags among a record's ``tags`` (the internal ones left out)."""
    found = [(k[len(USER_TAG) :], v) for k, v in tags.items() if k.startswith(USER_TAG)]
    return dict(sorted(found)) if found else {}


class _Nonces:
    """Launch nonces, unique across processes and cheaper than a uuid each: a random
    prefix per process (drawn again in a forked child, which would otherwise repeat
    its parent's sequence) and a counter."""

    def __init__(self) -> None:
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


_nonces = _Nonces()


@dataclass
class Launch:
    """One launch of root invocation ``id``: the nonce its create carries, and the
    backend's answer to that create once it came (see :func:`launching`)."""

    id: str
    nonce: str = field(default_factory=_nonces.next)
    answer: str | None = None
    #: Set when the request gave up on the create (it answered 503): a create still
    #: retrying against a backend that is down is dropped instead of sent later.
    abandoned: bool = False
    #: The task sending the create while it is on its way (canceled by :meth:`abandon`).
    sending: asyncio.Task[Any] | None = None

    def abandon(self) -> None:
        """Give up on the create: one still being sent is canceled, none is sent later."""
        self.abandoned = True
        if self.sending is not None:
            self.sending.cancel()


_LAUNCH: contextvars.ContextVar[Launch | None] = contextvars.ContextVar(
    "resonate_web_launch", default=None
)


@contextlib.contextmanager
def launching(id: str) -> Iterator[Launch]:
    """The create of root ``id`` started within carries :data:`LAUNCH_TAG`, and its
    answer is kept on the :class:`Launch` yielded."""
    launch = Launch(id)
    token = _LAUNCH.set(launch)
    try:
        yield launch
    finally:
        _LAUNCH.reset(token)


#: The prefix of the caller whose invocation is being started: the SDK creates the
#: promise in a task it spawns from the start call, which inherits this context.
_OWNER: contextvars.ContextVar[str] = contextvars.ContextVar("resonate_web_owner", default="")
#: The W3C traceparent of the request starting the invocation (see resonate_web._core.telemetry).
_TRACEPARENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "resonate_web_traceparent", default=None
)
#: On a root invocation started within a traced request: the request's traceparent.
TRACEPARENT_TAG = "resonate-web:traceparent"


#: More tags for the root invocation being started (the user's, a rerun's).
_EXTRA: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "resonate_web_extra_tags", default=None
)


@contextlib.contextmanager
def owned_by(owner: str, extra: dict[str, str] | None = None) -> Iterator[None]:
    """Root invocations started within are tagged with :data:`OWNER_TAG` ``owner``,
    and with the stored tags ``extra``."""
    token = _OWNER.set(owner)
    extra_token = _EXTRA.set(extra)
    try:
        yield
    finally:
        _EXTRA.reset(extra_token)
        _OWNER.reset(token)


@contextlib.contextmanager
def traced(traceparent: str | None) -> Iterator[None]:
    """Root invocations started within carry :data:`TRACEPARENT_TAG` ``traceparent``."""
    token = _TRACEPARENT.set(traceparent)
    try:
        yield
    finally:
        _TRACEPARENT.reset(token)


#: On a ``ctx.run`` step: the name of the function it runs. The SDK leaves a local
#: step's param empty (nothing reads it back), so without this tag the step is
#: known only by its id.
STEP_TAG = "resonate-web:step"

#: The largest step param (its arguments, encoded) recorded with a ``ctx.run`` step:
#: a step called with more keeps the SDK's empty param.
MAX_STEP_PARAM = 64 * 1024

#: The step ``ctx.run`` is creating: ``{"id", "name"}`` and, when its arguments
#: could be encoded, ``"param"`` (the wire value ``{"headers", "data"}``), filled in
#: once the SDK has built its create (see ``_sdk.name_steps``); the create is sent
#: from a task that inherits this holder.
_STEP: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "resonate_web_step", default=None
)


@contextlib.contextmanager
def naming_step() -> Iterator[dict[str, Any]]:
    """A step created from within is tagged with :data:`STEP_TAG`, and given its
    arguments as param, once the holder yielded names its ``id``, ``name`` and
    ``param``."""
    holder: dict[str, Any] = {}
    token = _STEP.set(holder)
    try:
        yield holder
    finally:
        _STEP.reset(token)


def _tag_step(envelope: dict[str, Any]) -> bool:
    """Tag the create in ``envelope`` (a ``promise.create``, or a ``task.fence`` whose
    action is one) with :data:`STEP_TAG`, and give it the step's arguments as param
    where its param is empty, if it is the step being named; whether it was."""
    step = _STEP.get()
    if envelope.get("kind") == "task.fence":
        fenced = envelope.get("data")
        action = fenced.get("action") if isinstance(fenced, dict) else None
        if not isinstance(action, dict):
            return False
        envelope = action
    data = envelope.get("data")
    if not step or "name" not in step or not isinstance(data, dict):
        return False
    if envelope.get("kind") != "promise.create" or data.get("id") != step.get("id"):
        return False
    tags = data.get("tags")
    if not isinstance(tags, dict):
        return False
    tags.setdefault(STEP_TAG, step["name"])
    param = data.get("param")
    if step.get("param") and not (isinstance(param, dict) and param.get("data")):
        data["param"] = step["param"]
    return True


#: The backend states a search may filter on.
STATES = frozenset({"pending", "resolved", "rejected", "rejected_canceled", "rejected_timedout"})
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_CREATE_KINDS = ('{"kind":"task.create"', '{"kind":"promise.create"')
_FENCE = '{"kind":"task.fence"'


def _root_create(envelope: dict[str, Any]) -> dict[str, Any] | None:
    data = envelope.get("data")
    if not isinstance(data, dict):
        return None
    if envelope.get("kind") == "task.create":
        action = data.get("action")
        data = action.get("data") if isinstance(action, dict) else None
        if not isinstance(data, dict):
            return None
    tags = data.get("tags")
    id = data.get("id")
    if not isinstance(tags, dict) or not isinstance(id, str):
        return None
    if tags.get("resonate:origin") != id or tags.get("resonate:parent") != id:
        return None
    return data


#: The envelopes on their way to the backend are read and rewritten with msgspec: a
#: start passes through here twice (its create, its answer), and json costs more.
_decode = msgspec.json.decode


def _encode(envelope: Any) -> str:
    return msgspec.json.encode(envelope).decode()


def _function_of(param: Any) -> str | None:
    raw = param.get("data") if isinstance(param, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        decoded = _decode(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None  # encrypted or foreign: found by INVOCATION_TAG alone
    func = decoded.get("func") if isinstance(decoded, dict) else None
    return func if isinstance(func, str) else None


def tag_root_create(request: str) -> tuple[str, Launch | None]:
    """``request`` (a protocol envelope), with :data:`INVOCATION_TAG` and
    :data:`FUNCTION_TAG` added when it creates a root invocation; else unchanged.
    With it, the :class:`Launch` this create belongs to, if any: the caller keeps
    the backend's answer on it.

    Cheap for every other request: only a create is parsed.
    """
    if request.startswith(_FENCE) and _STEP.get():
        envelope = _decode(request)
        if _tag_step(envelope):
            return _encode(envelope), None
        return request, None
    if not request.startswith(_CREATE_KINDS):
        return request, None
    envelope = _decode(request)
    create = _root_create(envelope)
    if create is None:
        if _tag_step(envelope):
            return _encode(envelope), None
        return request, None
    tags: dict[str, str] = create["tags"]
    launch = _LAUNCH.get()
    if launch is not None and launch.id == create["id"] and launch.answer is None:
        tags[LAUNCH_TAG] = launch.nonce
    else:
        launch = None
    tags.setdefault(INVOCATION_TAG, "true")
    owner = _OWNER.get()
    if owner:
        tags.setdefault(OWNER_TAG, owner)
    for key, value in (_EXTRA.get() or {}).items():
        tags.setdefault(key, value)
    traceparent = _TRACEPARENT.get()
    if traceparent:
        tags.setdefault(TRACEPARENT_TAG, traceparent)
    func = _function_of(create.get("param"))
    if func is not None:
        tags.setdefault(FUNCTION_TAG, func)
    return _encode(envelope), launch


def is_search(request: str) -> bool:
    return request.startswith('{"kind":"promise.search"')


# ── answering a search ──────────────────────────────────────────────────────


def encode_cursor(created_at: int, id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str] | None:
    """The ``(created_at, id)`` a cursor resumes after, or ``None`` if it is not ours."""
    try:
        created_at, id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, TypeError):
        return None
    if isinstance(created_at, int) and isinstance(id, str):
        return created_at, id
    return None


def search_records(records: Iterable[dict[str, Any]], query: dict[str, Any]) -> dict[str, Any]:
    """Answer ``promise.search`` (``query`` is its data) over wire-format records:
    ``{"promises": [...], "cursor": str | None}``, newest first."""
    state = query.get("state")
    tags = query.get("tags") or {}
    after = decode_cursor(query["cursor"]) if query.get("cursor") else None
    limit = min(int(query.get("limit") or DEFAULT_LIMIT), MAX_LIMIT)
    found = [
        r
        for r in records
        if (state is None or r.get("state") == state)
        and all(r.get("tags", {}).get(k) == v for k, v in tags.items())
        and (after is None or (r.get("createdAt", 0), r["id"]) < after)
    ]
    found.sort(key=lambda r: (r.get("createdAt", 0), r["id"]), reverse=True)
    return page_of(found[: limit + 1], query)


#: ``promise.search`` as one query on resonate-pg's schema; its parameters come
#: from :func:`pg_parameters`. An origin filter uses the origin_id index.
PG_SEARCH = """
SELECT resonate._promise_json(p, (extract(epoch from clock_timestamp()) * 1000)::bigint)
FROM resonate.promises p
WHERE (%s::text IS NULL OR p.state = %s)
  AND p.tags @> %s::jsonb
  AND (%s::text IS NULL OR p.origin_id = %s)
  AND (%s::bigint IS NULL OR (p.created_at, p.id) < (%s, %s))
ORDER BY p.created_at DESC, p.id DESC
LIMIT %s
"""


#: A function's statistics (see resonate_web._gateway.operations) as one aggregate query: counts
#: by state (a pending promise past its timeout counts as timed out, as reads show
#: it), the settled ones' durations, and per interval of the window (``width`` ms
#: each, ``count`` of them from ``since``) how many started and how many of those
#: failed (rejected or timed out), over the roots carrying the jsonb ``tags``
#: created since ``since`` (unix ms). ``found`` is read twice, so PostgreSQL
#: materializes it: one pass over the matching rows.
PG_STATS = """
WITH q AS (
  SELECT %s::jsonb AS tags, %s::bigint AS since, %s::bigint AS width, %s::bigint AS count,
         (extract(epoch from clock_timestamp()) * 1000)::bigint AS now
),
found AS MATERIALIZED (
  SELECT CASE WHEN p.state = 'pending' AND p.timeout_at <= q.now
              THEN 'rejected_timedout' ELSE p.state END AS state,
         COALESCE(p.settled_at, LEAST(p.timeout_at, q.now)) - p.created_at AS duration,
         LEAST((p.created_at - q.since) / q.width, q.count - 1) AS bucket
  FROM resonate.promises p, q
  WHERE p.tags @> q.tags AND p.created_at >= q.since
),
buckets AS (
  SELECT bucket, count(*) AS started,
         count(*) FILTER (WHERE state IN ('rejected', 'rejected_timedout')) AS failed
  FROM found GROUP BY bucket
)
SELECT count(*) FILTER (WHERE state = 'pending'),
       count(*) FILTER (WHERE state = 'resolved'),
       count(*) FILTER (WHERE state = 'rejected'),
       count(*) FILTER (WHERE state = 'rejected_canceled'),
       count(*) FILTER (WHERE state = 'rejected_timedout'),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration) FILTER (WHERE state <> 'pending'),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration) FILTER (WHERE state <> 'pending'),
       max(duration) FILTER (WHERE state <> 'pending'),
       (SELECT COALESCE(jsonb_agg(jsonb_build_array(bucket, started, failed)), '[]'::jsonb)
        FROM buckets)
FROM found
"""


def pg_stats_parameters(tags: dict[str, str], since: int, width: int, count: int) -> list[Any]:
    """The :data:`PG_STATS` parameters."""
    return [json.dumps(tags), since, width, count]


#: Counts by status, ``{p50, p95, max}`` durations (or None), and per interval
#: index ``(started, failed)``: a function's statistics as a backend answers them.
type Stats = tuple[dict[str, int], dict[str, float] | None, dict[int, tuple[int, int]]]


def stats_of_row(row: tuple[Any, ...]) -> Stats:
    """:data:`PG_STATS`'s row as counts by status, ``{p50, p95, max}`` (or None) and
    the intervals' ``(started, failed)`` by index."""
    names = ("pending", "resolved", "rejected", "canceled", "timedout")
    counts = {name: int(n or 0) for name, n in zip(names, row[:5], strict=True)}
    p50, p95, most = row[5:8]
    raw = row[8] if len(row) > 8 else None
    if isinstance(raw, str):
        raw = json.loads(raw)
    buckets = {int(b): (int(n), int(f)) for b, n, f in raw or ()}
    if most is None:
        return counts, None, buckets
    return counts, {"p50": float(p50), "p95": float(p95), "max": float(most)}, buckets


def pg_parameters(query: dict[str, Any]) -> list[Any]:
    """The :data:`PG_SEARCH` parameters for ``promise.search`` data ``query``
    (one row more than the page, to know whether there is a next one)."""
    tags = dict(query.get("tags") or {})
    state = query.get("state")
    origin = tags.get("resonate:origin")
    after = decode_cursor(query["cursor"]) if query.get("cursor") else None
    after_at, after_id = after if after else (None, None)
    limit = min(int(query.get("limit") or DEFAULT_LIMIT), MAX_LIMIT) + 1
    return [state, state, json.dumps(tags), origin, origin, after_at, after_at, after_id, limit]


def page_of(rows: list[dict[str, Any]], query: dict[str, Any]) -> dict[str, Any]:
    """The search answer from newest-first ``rows``, one more than the page if there
    is a next page (:data:`PG_SEARCH` asks for that many)."""
    limit = min(int(query.get("limit") or DEFAULT_LIMIT), MAX_LIMIT)
    page = rows[:limit]
    cursor = None
    if len(rows) > limit:
        last = page[-1]
        cursor = encode_cursor(last.get("createdAt", 0), last["id"])
    return {"promises": page, "cursor": cursor}
