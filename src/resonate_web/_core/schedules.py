"""Cron schedules: the service behind the routes, declarative schedules, and the ticker
(the cron maths is :mod:`resonate_web._core.cron`).

A schedule is stored in the backend (``schedule.create``): its cron, the
template of its ticks' ids (``{{.id}}-{{.timestamp}}``), and what every tick
carries: the call (function, version, arguments) as its param, a timeout
counted from the tick's time, and the tags ``resonate:target`` (the group that
runs it) and ``resonate:schedule`` (the schedule's id, so a tick can be found
by schedule on every backend).

Where the backend fires schedules itself (the Resonate server, resonate-pg)
it does. Where it only stores them (the SDK's embedded backend, and the dev
server built on the same state machine), :class:`Ticker` decides which ticks
are due, by the Resonate server's rules:

* the first tick is the first cron time after the schedule's creation;
* each tick is a root promise with the id ``{schedule id}-{tick time, unix ms}``,
  the schedule's param, a timeout of the tick time plus the schedule's promise
  timeout, and the schedule's tags plus ``resonate:schedule`` and the lineage
  tags (``resonate:origin``, ``branch``, ``parent``, ``prefix``: its own id);
* creating it is idempotent by id, so a tick fires once however often it is
  offered;
* after downtime every missed tick fires, oldest first, each with its own
  time in its id; one whose timeout has already passed is created timed out
  (the backend does that for a promise created after its timeout) and never
  runs.

Cron expressions have five fields, in UTC, in the syntax every backend
understands (numbers, ``*``, ranges, steps, lists): :func:`validate_cron`
refuses anything else before it reaches a backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from resonate.error import ServerError
from resonate.resonate import DEFAULT_TOP_LEVEL_TIMEOUT
from resonate.types import Value

from resonate_web._core import sdk as _sdk
from resonate_web._core import search as _search
from resonate_web._core.cron import (
    next_after,
    next_runs,
    now_ms,
    previous_runs,
    tick_id,
    validate_cron,
)
from resonate_web._core.invocations import iso
from resonate_web._core.parsing import validate_id
from resonate_web.problems import Problem

if TYPE_CHECKING:
    from resonate.resonate import Resonate

    from resonate_web._core.exposure import Exposed
    from resonate_web._core.timekeeping import Waker
    from resonate_web.settings import Settings

logger = logging.getLogger("resonate_web")

_MEMBERS = frozenset({"id", "cron", "function", "args", "kwargs", "timeout"})


class Runtime(Protocol):
    """What schedules need of the runtime that hosts them (``resonate_web._core.runtime``'s
    :class:`~resonate_web._core.runtime.Runtime` is one): its client, settings and functions."""

    settings: Settings

    @property
    def client(self) -> Resonate: ...

    @property
    def exposed(self) -> dict[str, Exposed]: ...

    def function(self, func: str | Callable[..., Any]) -> Exposed: ...

    #: What wakes the schedule ticker when time moves (a virtual clock's), if anything.
    ticker: Waker | None

    def now_ms(self) -> int: ...


#: The id template of a schedule's ticks, as ``Resonate.schedule`` stores it.
TICK_TEMPLATE = "{{.id}}-{{.timestamp}}"
#: The tag naming a tick's schedule (the Resonate server stamps the same one).
SCHEDULE_TAG = "resonate:schedule"
TARGET_TAG = "resonate:target"
#: A schedule id leaves room in the 256-character id alphabet for ``-{unix ms}``.
MAX_ID_LENGTH = 256 - 14
#: The most schedules ``GET /schedules`` lists.
MAX_LISTED = 1000
#: The SDK's own default for a root promise (one day).
DEFAULT_TIMEOUT = DEFAULT_TOP_LEVEL_TIMEOUT
#: The longest wait between two looks at the stored schedules (embedded backend).
MAX_TICKER_SLEEP = 1.0

# ── definitions ───────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Definition:
    """What a schedule is: compared field by field to tell a replay from a conflict."""

    id: str
    cron: str
    function: str
    version: int
    args: list[Any]
    kwargs: dict[str, Any]
    timeout_ms: int
    #: The address ticks are sent to (``resonate:target``), as the backend stores it.
    target: str

    def param(self) -> dict[str, Any]:
        """The call every tick makes, as the SDK stores a root invocation's."""
        return {
            "func": self.function,
            "args": self.args,
            "kwargs": self.kwargs,
            "version": self.version,
        }


@dataclass(frozen=True)
class Stored:
    """A schedule as the backend holds it, its call decoded to JSON data."""

    id: str
    cron: str
    function: str | None
    version: int
    args: list[Any]
    kwargs: dict[str, Any]
    timeout_ms: int
    target: str | None
    created_at: int
    #: Whether its ticks carry their function's tag (schedules stored by resonate-web
    #: releases before it did are not: :meth:`Schedules.declare` replaces them).
    tagged: bool = True

    def same(self, definition: Definition) -> bool:
        return (
            " ".join(self.cron.split()),
            self.function,
            self.version,
            self.args,
            self.kwargs,
            self.timeout_ms,
            self.target,
        ) == (
            definition.cron,
            definition.function,
            definition.version,
            definition.args,
            definition.kwargs,
            definition.timeout_ms,
            definition.target,
        )

    def differences(self, definition: Definition) -> str:
        """What differs from ``definition``, for logs (``cron '0 * * * *' -> '5 * * * *'``)."""
        pairs = [
            ("cron", " ".join(self.cron.split()), definition.cron),
            ("function", self.function, definition.function),
            ("version", self.version, definition.version),
            ("args", self.args, definition.args),
            ("kwargs", self.kwargs, definition.kwargs),
            ("timeout", self.timeout_ms / 1000, definition.timeout_ms / 1000),
            ("target", self.target, definition.target),
        ]
        return ", ".join(f"{name} {old!r} -> {new!r}" for name, old, new in pairs if old != new)


def tick_tags(definition: Definition) -> dict[str, str]:
    """The tags every tick of ``definition`` carries, whoever creates it: its group and
    schedule, and the root invocation tags resonate-web gives what it starts itself,
    so that a tick a backend creates on its own (the Resonate server, resonate-pg) is
    found by the searches by function (the list, the statistics) like any other."""
    return {
        TARGET_TAG: definition.target,
        SCHEDULE_TAG: definition.id,
        _search.INVOCATION_TAG: "true",
        _search.FUNCTION_TAG: definition.function,
    }


def _stored(record: Any, decode: Callable[[Any], Any]) -> Stored:
    try:
        call = decode(record.promise_param)
    except Exception:
        call = None
    if not isinstance(call, dict):
        call = {}
    func, args, kwargs, version = (
        call.get("func"),
        call.get("args"),
        call.get("kwargs"),
        call.get("version"),
    )
    return Stored(
        id=record.id,
        cron=record.cron,
        function=func if isinstance(func, str) else None,
        version=version if isinstance(version, int) else 1,
        args=list(args) if isinstance(args, list) else [],
        kwargs=dict(kwargs) if isinstance(kwargs, dict) else {},
        timeout_ms=int(record.promise_timeout),
        target=(record.promise_tags or {}).get(TARGET_TAG),
        created_at=int(record.created_at or 0),
        tagged=_search.FUNCTION_TAG in (record.promise_tags or {}),
    )


def schedule_id(id: Any) -> str:
    """``id`` if it can name a schedule (an id, with room for its ticks'), else 400."""
    if not isinstance(id, str):
        raise Problem("invalid-id", "'id' must be a string")
    validate_id(id, what="a schedule id")
    if len(id) > MAX_ID_LENGTH:
        raise Problem(
            "invalid-id",
            f"a schedule id is at most {MAX_ID_LENGTH} characters (its ticks' ids add "
            "'-' and the tick time in unix ms)",
        )
    return id


def parse_timeout(value: Any) -> timedelta | None:
    """The ``timeout`` member of a schedule: seconds (a number > 0), or absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise Problem(
            "invalid-json",
            "'timeout' is the seconds each tick may take before it times out: a number > 0",
        )
    return timedelta(seconds=value)


# ── the one path: routes, clients and declarations ───────────────────────


class Bounder(Protocol):
    def __call__[T](self, awaitable: Awaitable[T], /) -> Awaitable[T]: ...


async def _as_is[T](awaitable: Awaitable[T]) -> T:
    return await awaitable


StatusReader = Callable[[str, str], Awaitable[dict[str, Any]]]


class Schedules:
    """Create, read, list and delete schedules, for the routes, the clients and
    the schedules declared with ``expose(schedule=...)`` alike.

    Only schedules of exposed functions are served: another id is 404, as a
    function that is not exposed is. ``bounded`` turns an unanswered backend
    into a 503 (the gateway's); ``status`` reads a tick's status document.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        bounded: Bounder = _as_is,
        status: StatusReader | None = None,
    ) -> None:
        self.runtime = runtime
        self._bounded = bounded
        self._status = status

    # ── definitions ─────────────────────────────────────────────────────────

    def define(
        self,
        id: Any,
        cron: Any,
        function: str | Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: timedelta | None = None,
    ) -> Definition:
        """Check a schedule (id, cron, then function and arguments) into a definition.

        Raises the contract's problems: 400 ``invalid-id`` / ``invalid-cron``,
        404 ``unknown-function``, 422 ``invalid-arguments``. Nothing reaches the
        backend.
        """
        id = schedule_id(id)
        cron = validate_cron(cron)
        exposed = self.runtime.function(function)
        call_args, call_kwargs = exposed.bind(list(args), dict(kwargs))
        timeout = timeout or exposed.timeout or DEFAULT_TIMEOUT
        return Definition(
            id=id,
            cron=cron,
            function=exposed.name,
            version=exposed.version,
            args=call_args,
            kwargs=call_kwargs,
            timeout_ms=int(timeout.total_seconds() * 1000),
            target=_sdk.resolve_target(self.runtime.client, self.group_of(exposed)),
        )

    def from_json(self, payload: dict[str, Any]) -> Definition:
        """:meth:`define` from a ``POST /schedules`` body."""
        unknown = sorted(set(payload) - _MEMBERS)
        if unknown:
            raise Problem(
                "invalid-json",
                f"unknown member(s) {', '.join(map(repr, unknown))}: a schedule is "
                '{"id", "cron", "function", "args", "kwargs", "timeout"}',
            )
        args, kwargs = payload.get("args", []), payload.get("kwargs", {})
        if not isinstance(args, list):
            raise Problem("invalid-json", "'args' must be a JSON array")
        if not isinstance(kwargs, dict):
            raise Problem("invalid-json", "'kwargs' must be a JSON object")
        timeout = parse_timeout(payload.get("timeout"))
        id, cron, function = payload.get("id"), payload.get("cron"), payload.get("function")
        if not isinstance(function, str):
            schedule_id(id)
            validate_cron(cron)
            raise Problem("invalid-json", "'function' must be the name of an exposed function")
        return self.define(id, cron, function, args, kwargs, timeout)

    def group_of(self, exposed: Exposed) -> str:
        """The group a schedule's ticks run on: the target group of a dispatched
        function, the web processes' own group (``RESONATE_GROUP``) of an inline one."""
        if exposed.mode == "dispatch" and exposed.target:
            return exposed.target
        return self.runtime.settings.group

    # ── backend ─────────────────────────────────────────────────────────────

    async def read(self, id: str) -> Stored | None:
        """Schedule ``id`` as stored (any function), or ``None``."""
        client = self.runtime.client
        try:
            record = await self._bounded(client.schedules.get(id))
        except ServerError as exc:
            if exc.code == 404:
                return None
            raise
        return _stored(record, lambda value: _sdk.decode_value(client, value))

    async def _served(self, id: str) -> Stored:
        stored = await self.read(validate_id(id, what="a schedule id"))
        if stored is None or stored.function not in self.runtime.exposed:
            raise Problem("not-found", f"no schedule with id {id!r}")
        return stored

    async def _create(self, definition: Definition) -> Stored:
        client = self.runtime.client
        try:
            await self._bounded(
                client.schedules.create(
                    id=definition.id,
                    cron=definition.cron,
                    promise_id=TICK_TEMPLATE,
                    promise_timeout=definition.timeout_ms,
                    promise_param=Value(data=definition.param()),
                    promise_tags=tick_tags(definition),
                )
            )
        except ServerError as exc:
            if exc.code == 400:
                raise Problem(
                    "invalid-cron", f"the backend refused schedule {definition.id!r}: {exc}"
                ) from None
            if exc.code != 409:  # 409: it exists (the Resonate server's answer); read it
                raise
        stored = await self.read(definition.id)
        if stored is None:  # pragma: no cover - created, then deleted at once
            raise Problem("conflict", f"schedule {definition.id!r} was deleted meanwhile")
        return stored

    async def create(self, definition: Definition) -> tuple[bool, Stored]:
        """Store ``definition``; ``(True, stored)`` when new, ``(False, stored)`` when
        the same definition was there already; 409 ``conflict`` for another one."""
        existing = await self.read(definition.id)
        created = existing is None
        stored = await self._create(definition) if existing is None else existing
        if not stored.same(definition):
            raise Problem(
                "conflict",
                f"schedule {definition.id!r} exists with another definition "
                f"({stored.differences(definition)}); delete it first to change it",
            )
        return created, stored

    async def delete(self, id: str) -> None:
        """Delete schedule ``id`` (404 ``not-found`` when there is none to serve)."""
        await self._served(id)
        try:
            await self._bounded(self.runtime.client.schedules.delete(id))
        except ServerError as exc:
            if exc.code == 404:
                raise Problem("not-found", f"no schedule with id {id!r}") from None
            raise

    async def listing(self) -> list[Stored]:
        """The schedules of exposed functions, by id (at most :data:`MAX_LISTED`)."""
        client = self.runtime.client
        records: list[Any] = []
        cursor: str | None = None
        while len(records) < MAX_LISTED:
            page = await self._bounded(self._search(cursor))
            if page is None:  # resonate-pg stores schedules but does not search them
                records = await self._unsearchable()
                break
            records.extend(page.schedules)
            cursor = page.cursor
            if not cursor or not page.schedules:
                break
        exposed = self.runtime.exposed
        found = [_stored(r, lambda value: _sdk.decode_value(client, value)) for r in records]
        return sorted((s for s in found if s.function in exposed), key=lambda s: s.id)

    async def _search(self, cursor: str | None) -> Any:
        """One page of the backend's schedule search, or ``None`` if it has none (501)."""
        try:
            return await self.runtime.client.schedules.search(None, 100, cursor)
        except ServerError as exc:
            if exc.code == 501:
                return None
            raise

    async def _unsearchable(self) -> list[Any]:
        if self.runtime.settings.backend != "postgres":
            raise Problem(
                "backend-unavailable", "the backend does not implement the search of schedules"
            )
        ids = await self._bounded(_postgres_schedule_ids(self.runtime))
        return [record for id in ids if (record := await self._record(id)) is not None]

    async def _record(self, id: str) -> Any:
        try:
            return await self._bounded(self.runtime.client.schedules.get(id))
        except ServerError as exc:
            if exc.code == 404:
                return None
            raise

    # ── documents ───────────────────────────────────────────────────────────

    def summary(self, stored: Stored, prefix: str, now: int | None = None) -> dict[str, Any]:
        """A schedule's document without its recent ticks (what ``GET /schedules`` lists)."""
        now = self.runtime.now_ms() if now is None else now
        try:
            upcoming = [str(iso(at)) for at in next_runs(stored.cron, now)]
        except (ValueError, KeyError):  # a cron stored by other means that croniter cannot read
            upcoming = []
        return {
            "id": stored.id,
            "cron": stored.cron,
            "function": stored.function,
            "args": stored.args,
            "kwargs": stored.kwargs,
            "timeout": stored.timeout_ms / 1000,
            "next_runs": upcoming,
            "links": {"self": f"{prefix}/schedules/{stored.id}"},
        }

    async def document(self, stored: Stored, prefix: str) -> dict[str, Any]:
        """A schedule's document: :meth:`summary` and its latest ticks, newest first.

        The ticks are found by their ids (a tick's id is its cron time), so this
        reads at most :data:`RECENT` promises on any backend, searchable or not.
        """
        now = self.runtime.now_ms()
        doc = self.summary(stored, prefix, now)
        try:
            times = previous_runs(stored.cron, now, stored.created_at)
        except (ValueError, KeyError):
            times = []
        ids = [tick_id(TICK_TEMPLATE, stored.id, at) for at in times]
        docs = await asyncio.gather(*(self._tick(id, prefix) for id in ids))
        doc["recent"] = [d for d in docs if d is not None]
        return doc

    async def _tick(self, id: str, prefix: str) -> dict[str, Any] | None:
        if self._status is None:  # pragma: no cover - every reader passes one
            return None
        try:
            return await self._status(id, prefix)
        except Problem as problem:
            if problem.slug == "not-found":
                return None  # not fired yet (the ticker runs behind the clock)
            raise

    async def get(self, id: str, prefix: str) -> dict[str, Any]:
        return await self.document(await self._served(id), prefix)

    # ── declarations ────────────────────────────────────────────────────────

    async def declare(self) -> None:
        """Create every schedule the exposed functions declare (``expose(schedule=...)``),
        idempotently (many processes may start at once); a stored one whose
        definition differs from the code's is replaced, with a warning."""
        for exposed in list(self.runtime.exposed.values()):
            for id, cron in exposed.schedules:
                try:
                    await self._declare(self.define(id, cron, exposed.name, [], {}))
                except Exception:
                    logger.exception("resonate-web: could not declare schedule %s", id)

    async def _declare(self, definition: Definition) -> None:
        existing = await self.read(definition.id)
        if existing is not None and existing.same(definition) and existing.tagged:
            return
        if existing is not None and existing.same(definition):
            logger.info(
                "resonate-web: schedule %s was stored without its function's tag on its "
                "ticks: replacing it, so its ticks are listed and counted by function",
                definition.id,
            )
        elif existing is not None:
            logger.warning(
                "resonate-web: schedule %s differs from its declaration in code (%s): "
                "replacing the stored one",
                definition.id,
                existing.differences(definition),
            )
            try:
                await self.runtime.client.schedules.delete(definition.id)
            except ServerError as exc:
                if exc.code != 404:  # another process replaced it first
                    raise
        stored = await self._create(definition)
        if stored.same(definition):
            if existing is None:
                logger.info(
                    "resonate-web: schedule %s declared: %s every %r (UTC)",
                    definition.id,
                    definition.function,
                    definition.cron,
                )
        else:  # pragma: no cover - processes with different code starting at once
            logger.warning(
                "resonate-web: schedule %s was stored by another process with another "
                "definition (%s); left as it is",
                definition.id,
                stored.differences(definition),
            )


async def _postgres_schedule_ids(runtime: Runtime) -> list[str]:
    """The ids in resonate-pg's ``schedules`` table (it answers 501 to a search)."""
    import psycopg

    url = runtime.settings.url
    assert url is not None
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cursor = await conn.execute(
                "SELECT id FROM resonate.schedules ORDER BY id LIMIT %s", (MAX_LISTED,)
            )
            return [str(row[0]) for row in await cursor.fetchall()]
    except psycopg.Error as exc:
        raise Problem(
            "backend-unavailable",
            f"resonate-pg does not search schedules, and reading its schedules table failed: {exc}",
        ) from None


def utc_sessions(url: str) -> str:
    """``url`` (a ``postgresql://`` DSN) with its sessions' time zone set to UTC.

    resonate-pg computes a schedule's next tick in the session's time zone
    (``TimeZone``): on a database whose time zone is not UTC, every tick comes
    hours early or late. The processes that create schedules and run its timer
    pass use this DSN; a time zone the DSN sets itself is left alone.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join(value for key, value in query if key == "options")
    if "timezone" in options.lower():
        return url
    query = [(key, value) for key, value in query if key != "options"]
    query.append(("options", f"{options} -c timezone=UTC".strip()))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


# ── firing where the backend does not ─────────────────────────────────────


class StoredSchedule(Protocol):
    """A stored schedule as the state machine (``ScheduleStub``) or the protocol
    (``ScheduleRecord``) has it."""

    @property
    def id(self) -> str: ...
    @property
    def cron(self) -> str: ...
    @property
    def promise_id(self) -> str: ...
    @property
    def promise_timeout(self) -> int: ...
    @property
    def promise_param(self) -> Any: ...
    @property
    def promise_tags(self) -> Any: ...
    @property
    def created_at(self) -> int: ...


@dataclass(frozen=True)
class Tick:
    """One firing: the root promise to create (idempotent by ``promise_id``)."""

    schedule_id: str
    at: int
    promise_id: str
    timeout_at: int
    #: The schedule's param, passed through as stored (still encoded).
    param: Any
    tags: dict[str, str]


@dataclass
class _Cursor:
    created_at: int
    cron: str
    next_at: int | None


@dataclass
class Ticker:
    """Which ticks of the stored schedules are due, by the Resonate server's rules.

    Keeps, per schedule, the time of its next tick, starting from the first cron
    time after the schedule's creation; a schedule deleted, or re-created under
    the same id, starts afresh. Every due tick is returned, oldest first, so
    ticks missed while nothing fired them come out together, each with its own
    time. Creating a tick's promise is the caller's (the backend makes it
    idempotent by id, and creates it timed out when its timeout has passed).
    """

    _cursors: dict[str, _Cursor] = field(default_factory=dict)
    _broken: set[tuple[str, str]] = field(default_factory=set)

    def due(self, schedules: Iterable[StoredSchedule], now: int) -> list[Tick]:
        ticks: list[Tick] = []
        seen: set[str] = set()
        for schedule in schedules:
            seen.add(schedule.id)
            cursor = self._cursor(schedule)
            while cursor.next_at is not None and cursor.next_at <= now:
                ticks.append(_tick(schedule, cursor.next_at))
                cursor.next_at = self._next(schedule, cursor.next_at)
        for gone in set(self._cursors) - seen:
            del self._cursors[gone]
        return ticks

    def next_due(self) -> int | None:
        """The time of the earliest tick not yet due (unix ms), if any."""
        times = [c.next_at for c in self._cursors.values() if c.next_at is not None]
        return min(times, default=None)

    def _cursor(self, schedule: StoredSchedule) -> _Cursor:
        created_at = int(schedule.created_at or 0)
        cursor = self._cursors.get(schedule.id)
        if cursor is None or (cursor.created_at, cursor.cron) != (created_at, schedule.cron):
            cursor = _Cursor(created_at, schedule.cron, self._next(schedule, created_at))
            self._cursors[schedule.id] = cursor
        return cursor

    def _next(self, schedule: StoredSchedule, after: int) -> int | None:
        try:
            return next_after(schedule.cron, after)
        except (ValueError, KeyError) as exc:
            key = (schedule.id, schedule.cron)
            if key not in self._broken:
                self._broken.add(key)
                logger.warning(
                    "resonate-web: schedule %s: cron %r cannot be evaluated (%s); it never fires",
                    schedule.id,
                    schedule.cron,
                    exc,
                )
            return None


def _tick(schedule: StoredSchedule, at: int) -> Tick:
    promise_id = tick_id(schedule.promise_id, schedule.id, at)
    tags: dict[str, str] = dict(_tags(schedule.promise_tags))
    tags[SCHEDULE_TAG] = schedule.id
    for lineage in ("origin", "branch", "parent", "prefix"):
        tags[f"resonate:{lineage}"] = promise_id
    return Tick(
        schedule_id=schedule.id,
        at=at,
        promise_id=promise_id,
        timeout_at=at + int(schedule.promise_timeout),
        param=schedule.promise_param,
        tags=tags,
    )


def _tags(tags: Any) -> Mapping[str, str]:
    return tags if isinstance(tags, Mapping) else {}


async def fire_embedded(runtime: Runtime, ticker: Ticker | None = None) -> None:
    """Fire the embedded backend's schedules, for as long as the runtime runs.

    The SDK's in-process backend stores schedules without firing them; each
    process has its own, so each runtime on it fires its own. Ticks run here,
    like the functions the process runs inline.
    """
    ticker = ticker or Ticker()
    client = runtime.client
    while True:
        try:
            page = await client.schedules.search(None, None, None)
            for tick in ticker.due(page.schedules, runtime.now_ms()):
                await _sdk.create_promise(
                    client, tick.promise_id, tick.timeout_at, tick.param, tick.tags
                )
                logger.debug(
                    "resonate-web: schedule %s: tick %s", tick.schedule_id, tick.promise_id
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("resonate-web: firing the embedded backend's schedules failed")
        upcoming = ticker.next_due()
        if runtime.ticker is not None:
            # On a virtual clock: until the next tick, or until time moves (a
            # schedule created meanwhile is found then).
            await runtime.ticker.wait(upcoming)
            continue
        delay = MAX_TICKER_SLEEP
        if upcoming is not None:
            delay = min(delay, max((upcoming - now_ms()) / 1000, 0.01))
        await asyncio.sleep(delay)


__all__ = [
    "MAX_ID_LENGTH",
    "SCHEDULE_TAG",
    "TICK_TEMPLATE",
    "Definition",
    "Schedules",
    "Stored",
    "Tick",
    "Ticker",
    "fire_embedded",
]
