"""The HTTP contract, framework-free.

An adapter turns its framework's request into a :class:`Request`, calls
:meth:`Gateway.handle` with the route's name, and turns the :class:`Response`
back. Every behaviour of the contract lives here, once.

All coroutines here run on the runtime's loop (the app's loop for FastAPI, the
portal loop for sync frameworks).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx
import msgspec
from resonate.error import (
    ConnectorError,
    DecodingError,
    ResonateError,
    ServerError,
    StoppedError,
)
from resonate.handle import ResonateHandle
from resonate.types import PromiseRecord

from resonate_web._core import flow, invocations, schedules, telemetry
from resonate_web._core import sdk as _sdk
from resonate_web._core import search as _search
from resonate_web._core.exposure import Exposed
from resonate_web._core.parsing import (
    idempotency_key,
    json_object,
    new_id,
    parse_wait,
    validate_id,
    validate_priority,
    validate_tags,
)
from resonate_web._core.runtime import ConnectionWatch, Runtime, describe_backend
from resonate_web._gateway import browse, dashboard, openapi, operations, settling
from resonate_web._gateway.auth import Authorize, authorize_from_settings, call_hook
from resonate_web._gateway.contract import (
    DEV_SERVER,
    Request,
    Response,
    event_stream,
    problem_response,
    scoped,
    sse_frame,
)
from resonate_web.problems import Problem

logger = logging.getLogger("resonate_web")

#: Sent when ``?wait=`` asked for more than ``RESONATE_WAIT_CAP``: the cap, in seconds.
WAIT_CAPPED = "Resonate-Wait-Capped"
_HEALTH_PROBE_ID = "resonate-web-health-probe"
_CALL_MEMBERS = frozenset({"args", "kwargs", "tags", "priority"})
#: How many settled invocations' records a gateway on the embedded backend keeps, to
#: answer their status without a backend call (see :meth:`Gateway.quick`).
SETTLED_KEPT = 1024


class _Settled(NamedTuple):
    """A settled invocation's decoded record, and the embedded backend's token for
    the stored promise it was read from (:func:`~resonate_web._core.sdk.embedded_stored`)."""

    record: PromiseRecord
    stored: object


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    summary: str
    streams: bool = False


ROUTES: tuple[Route, ...] = (
    Route("list_functions", "GET", "/functions", "List the exposed functions"),
    Route("start", "POST", "/functions/{name}", "Start an invocation"),
    Route("stats", "GET", "/functions/{name}/stats", "A function's statistics over a window"),
    Route("cancel_many", "POST", "/invocations/cancel", "Cancel the invocations a filter finds"),
    Route("rerun_many", "POST", "/invocations/rerun", "Rerun the invocations a filter finds"),
    Route("status", "GET", "/invocations/{id}", "Read (or long-poll) an invocation"),
    Route("events", "GET", "/invocations/{id}/events", "Stream an invocation's status", True),
    Route("health", "GET", "/health", "Backend health"),
    Route("openapi", "GET", "/openapi.json", "This API's OpenAPI document"),
    Route("list", "GET", "/invocations", "List invocations, newest first"),
    Route("cancel", "POST", "/invocations/{id}/cancel", "Cancel an invocation"),
    Route("rerun", "POST", "/invocations/{id}/rerun", "Rerun a settled invocation"),
    Route("tree", "GET", "/invocations/{id}/tree", "An invocation's durable steps"),
    Route("promise", "GET", "/promises/{id}", "Read a promise"),
    Route("resolve", "POST", "/promises/{id}/resolve", "Resolve a promise with a JSON value"),
    Route("reject", "POST", "/promises/{id}/reject", "Reject a promise with a JSON error"),
    Route("cancel_promise", "POST", "/promises/{id}/cancel", "Cancel a promise"),
    Route("list_schedules", "GET", "/schedules", "List the schedules"),
    Route("create_schedule", "POST", "/schedules", "Create a cron schedule"),
    Route("get_schedule", "GET", "/schedules/{id}", "Read a schedule and its latest ticks"),
    Route("delete_schedule", "DELETE", "/schedules/{id}", "Delete a schedule"),
    Route("feed", "GET", "/events", "Stream invocations as they start and settle", True),
    Route("ui", "GET", "/ui", "The dashboard page"),
    Route("ui_asset", "GET", "/ui/{asset}", "The dashboard's script and style"),
)

_BY_NAME = {route.name: route for route in ROUTES}


def allowed_methods(path: str, *, head: bool = False) -> list[str]:
    """The methods the routes serve on ``path`` (a route's path, ``/schedules``): what
    a 405's ``Allow`` lists, in every adapter. ``head``: ``HEAD`` too where ``GET`` is
    (the framework answers it)."""
    methods = [route.method for route in ROUTES if route.path == path]
    if head and "GET" in methods:
        methods.append("HEAD")
    return methods


def route_named(name: str) -> Route:
    """The route called ``name``."""
    return _BY_NAME[name]


#: Routes that are not part of the JSON API (left out of the OpenAPI document).
UI_ROUTES = frozenset({"feed", "ui", "ui_asset"})


#: Routes served to anyone, whatever the authorize hook says.
PUBLIC_ROUTES = frozenset({"health"})


class Gateway:
    """Serves the contract's routes for one :class:`Runtime`.

    ``authorize`` is the access hook (see :mod:`resonate_web._gateway.auth`); without
    one, the settings' ready-made policy (a token or JWTs), if any.
    """

    def __init__(self, runtime: Runtime, *, authorize: Authorize | None = None) -> None:
        self.runtime = runtime
        runtime.gateway = self
        self.settings = runtime.settings
        self.authorize = authorize or authorize_from_settings(runtime.settings)
        self._waiters = 0
        #: Whether the backend is ``resonate-web dev`` (None: not asked yet).
        self._dev_server: bool | None = None
        #: Invocations started and settled here, for the dashboard's live list.
        self.feed = dashboard.Feed()
        #: Settled invocations' records, by stored id (embedded backend only; written
        #: on the runtime's loop, read from any thread).
        self._final: dict[str, _Settled] = {}
        #: The process they were read in (a forked child holds a copy, not the backend).
        self._final_pid = 0
        telemetry.watch_waiting(self)
        self._handlers: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "list_functions": self.list_functions,
            "start": self.start,
            "status": self.status,
            "events": self.events,
            "health": self.health,
            "openapi": self.openapi,
            "list": functools.partial(browse.list_invocations, self),
            "cancel": functools.partial(settling.cancel_invocation, self),
            "rerun": functools.partial(operations.rerun, self),
            "cancel_many": functools.partial(operations.bulk, self, "cancel"),
            "rerun_many": functools.partial(operations.bulk, self, "rerun"),
            "stats": functools.partial(operations.stats, self),
            "tree": functools.partial(browse.tree, self),
            "promise": functools.partial(settling.get_promise, self),
            "resolve": functools.partial(settling.settle_promise, self, "resolve"),
            "reject": functools.partial(settling.settle_promise, self, "reject"),
            "cancel_promise": functools.partial(settling.settle_promise, self, "cancel"),
            "list_schedules": self.list_schedules,
            "create_schedule": self.create_schedule,
            "get_schedule": self.get_schedule,
            "delete_schedule": self.delete_schedule,
            "feed": functools.partial(dashboard.events, self),
            "ui": functools.partial(dashboard.page, self),
            "ui_asset": functools.partial(dashboard.asset, self),
        }
        #: Schedules' logic, shared with the clients (resonate_web._core.schedules).
        self.schedules = schedules.Schedules(
            runtime, bounded=self.bounded, status=self.status_document
        )

    @property
    def waiting(self) -> int:
        """Requests waiting for an invocation to settle now (long-polls, streams)."""
        return self._waiters

    # ── dispatch ────────────────────────────────────────────────────────────

    async def handle(self, route: str, request: Request, instance: str) -> Response:
        """Run route ``route``; every contract error becomes a problem response.

        With OpenTelemetry, in a span of its own (see :mod:`resonate_web._core.telemetry`)."""
        if not telemetry.active():
            with telemetry.invocation(request.path_params.get("id")):
                return await self._handle(route, request, instance)
        with telemetry.route_span(
            route,
            request.method,
            _BY_NAME[route].path,
            id=request.path_params.get("id"),
            function=request.path_params.get("name"),
        ) as span:
            response = await self._handle(route, request, instance)
            telemetry.finish(span, response.status)
            return response

    def quick(self, route: str, request: Request) -> Response | None:
        """The answer to ``request`` when it needs no backend call, else ``None``.

        Runs on any thread, so a sync adapter answers without the hop to the
        runtime's loop. A settled invocation never changes: its status read is
        answered from the record this gateway already holds (from the waiter that
        saw it settle, or an earlier read) while the embedded backend still stores
        that very promise. Anything else (an authorize hook, spans, a bad query, a
        record not held) takes the usual way through :meth:`handle`.
        """
        if route != "status" or not self._final or self.authorize is not None:
            return None
        id = request.path_params.get("id")
        kept = self._final.get(id) if id is not None else None
        if id is None or kept is None or self._final_pid != os.getpid() or telemetry.active():
            return None
        try:
            if _sdk.embedded_stored(self.runtime.client, id) is not kept.stored:
                return None
            _, noted = self._wait(request)
            validate_id(id)
        except (Problem, RuntimeError):
            return None
        link = self.link(request.prefix, id)
        doc = invocations.document(kept.record, public_id=id, self_link=link)
        return Response(200, doc, headers=dict(noted))

    def _remember(self, id: str, record: PromiseRecord) -> None:
        """Keep settled invocation ``id``'s decoded ``record`` for :meth:`quick`
        (embedded backend only; on the runtime's loop)."""
        if (
            self.settings.backend != "embedded"
            or invocations.status_of(record) == "pending"
            or invocations.function_of(record) is None
        ):
            return
        stored = _sdk.embedded_stored(self.runtime.client, id)
        if stored is None:
            return
        kept = self._final
        self._final_pid = os.getpid()
        if id not in kept and len(kept) >= SETTLED_KEPT:
            del kept[next(iter(kept))]
        kept[id] = _Settled(record, stored)

    async def _handle(self, route: str, request: Request, instance: str) -> Response:
        try:
            if self.authorize is not None and route not in PUBLIC_ROUTES:
                resource = request.path_params.get("name") or request.path_params.get("id")
                try:
                    principal = await call_hook(self.authorize, request, route, resource)
                except Problem as refused:
                    # The page's shell holds no data and is where a token is typed.
                    if route not in dashboard.SHELL_ROUTES or refused.status != 401:
                        raise
                    principal = None
                request = dataclasses.replace(request, principal=principal)
            return await self._handlers[route](request)
        except Problem as problem:
            return problem_response(problem, instance)

    # ── backend access, always bounded ──────────────────────────────────────

    def _unavailable(self, why: str) -> Problem:
        return Problem(
            "backend-unavailable",
            f"{describe_backend(self.settings)} did not answer: {why}",
            headers={"Retry-After": "1"},
        )

    async def bounded[T](self, awaitable: Awaitable[T]) -> T:
        """``awaitable``, or a 503 once the backend times out, refuses or fails."""
        try:
            if self.settings.backend == "embedded":
                # This process is the backend: nothing to time out but this very loop.
                return await awaitable
            if self.runtime.watch is None:
                return await asyncio.wait_for(awaitable, self.settings.backend_timeout)
            return await self._watched(awaitable, self.runtime.watch)
        except TimeoutError:
            raise self._unavailable(
                f"no answer within {self.settings.backend_timeout:g}s"
            ) from None
        except ConnectorError as exc:
            raise self._unavailable(str(exc.__cause__ or exc)) from None
        except ServerError as exc:
            if exc.code >= 500:
                raise self._unavailable(f"server error {exc.code}") from None
            if exc.code in (401, 403):
                # Never echo what was sent: the detail names the setting, not the token.
                raise self._unavailable(
                    f"it refused this gateway's credentials ({exc.code}): check RESONATE_TOKEN"
                ) from None
            raise
        except (DecodingError, StoppedError) as exc:
            raise self._unavailable(
                f"its answer is not the Resonate protocol ({type(exc).__name__})"
            ) from None

    async def _watched[T](self, awaitable: Awaitable[T], watch: ConnectionWatch) -> T:
        """``awaitable``, cut short by the first failed connection attempt (then 503).

        Awaited in this very task (no task or wait of its own per call): the watch
        cancels the task on a failed attempt, and that cancellation, told apart
        from any other, becomes the 503."""
        waiter = watch.enlist()
        try:
            async with asyncio.timeout(self.settings.backend_timeout):
                return await awaitable
        except asyncio.CancelledError:
            if not waiter.uncancel():
                raise  # not the watch's (or the watch's and somebody else's)
        finally:
            watch.discharge(waiter)
        raise self._unavailable(f"{await watch.cause()} (the client keeps retrying)")

    async def read(self, id: str) -> PromiseRecord | None:
        """A plain read of promise ``id`` (values decoded to JSON data), or ``None``."""
        try:
            raw = await self.bounded(_sdk.read_promise(self.runtime.client, id))
        except ServerError as exc:
            if exc.code == 404:
                return None
            raise self._unavailable(f"server error {exc.code}") from None
        record = self._decoded(raw)
        if record.state != "pending":
            self._remember(id, record)
        return record

    def _decoded(self, raw: PromiseRecord) -> PromiseRecord:
        """``raw`` with its param and value decoded to JSON data."""
        return msgspec.structs.replace(
            raw,
            param=msgspec.structs.replace(raw.param, data=self._decode(raw.param)),
            value=msgspec.structs.replace(raw.value, data=self._decode(raw.value)),
        )

    def _decode(self, value: Any) -> Any:
        try:
            return _sdk.decode_value(self.runtime.client, value)
        except ResonateError:
            return None

    # ── routes ──────────────────────────────────────────────────────────────

    async def list_functions(self, request: Request) -> Response:
        return Response(200, {"functions": [e.describe() for e in self.runtime.exposed.values()]})

    async def openapi(self, request: Request) -> Response:
        promises = self.settings.promises != "off"
        return Response(
            200, openapi.document(self.runtime.exposed, request.prefix, promises=promises)
        )

    async def health(self, request: Request) -> Response:
        await self.read(_HEALTH_PROBE_ID)
        return Response(200, {"status": "ok", "backend": self.settings.backend})

    def _call_arguments(
        self, request: Request
    ) -> tuple[list[Any], dict[str, Any], dict[str, str], int | None]:
        payload = json_object(
            request.body,
            request.headers.get("content-type"),
            body_limit=self.settings.body_limit,
            max_depth=self.settings.json_depth,
            members=_CALL_MEMBERS,
            hint='the body holds the arguments under "args" (a list) and "kwargs" (an '
            'object), as in {"args": [1, 2]} or {"kwargs": {"a": 1, "b": 2}}',
        )
        args = payload.get("args", [])
        kwargs = payload.get("kwargs", {})
        if not isinstance(args, list):
            raise Problem("invalid-json", "'args' must be a JSON array")
        if not isinstance(kwargs, dict):
            raise Problem("invalid-json", "'kwargs' must be a JSON object")
        return (
            args,
            kwargs,
            validate_tags(payload.get("tags")),
            validate_priority(payload.get("priority")),
        )

    def _invocation_id(self, request: Request) -> str:
        header = request.headers.get("idempotency-key")
        if header is not None:
            return idempotency_key(header)
        query_id = request.query.get("id")
        if query_id is not None:
            return validate_id(query_id)
        return new_id()

    def link(self, prefix: str, id: str) -> str:
        return f"{prefix}/invocations/{id}"

    def _check_replay(
        self,
        record: PromiseRecord,
        exposed: Exposed,
        args: list[Any],
        kwargs: dict[str, Any],
        tags: dict[str, str],
    ) -> None:
        stored = invocations.call_of(record)
        if stored != (exposed.name, exposed.version, args, kwargs) or (
            _search.user_tags(record.tags) != dict(sorted(tags.items()))
        ):
            raise Problem(
                "idempotency-key-reused",
                "this id already names an invocation with a different function, arguments or tags",
            )

    async def start(self, request: Request) -> Response:
        exposed = self.runtime.function(request.path_params["name"])
        wait, noted = self._wait(request)
        id = scoped(request.scope, self._invocation_id(request))
        args, kwargs, tags, priority = self._call_arguments(request)
        args, kwargs = exposed.bind(args, kwargs)
        if exposed.flow.debounce is not None:
            # The invocation this start joins, which is waited on, is only known
            # once the backend has answered.
            record, handle = await self.begin(
                exposed, id, args, kwargs, owner=request.scope, tags=tags, priority=priority
            )
            id = record.id
            if wait > 0:
                with self.runtime.pushed.waiting(id):
                    record = await self._wait_settled(id, record, time.monotonic() + wait)
            return await self._status_response(request, id, record, created=True, headers=noted)
        # Kept from before the create: a quick function settles before the wait begins.
        with self.runtime.pushed.waiting(id):
            record, handle = await self.begin(
                exposed,
                id,
                args,
                kwargs,
                owner=request.scope,
                tags=tags,
                priority=priority,
                watch=wait <= 0,
            )
            if wait > 0:
                settled = False
                try:
                    record = await self._wait_settled(id, record, time.monotonic() + wait, handle)
                    settled = invocations.status_of(record) != "pending"
                finally:
                    if handle is not None and settled:
                        # Seen settled here: counted now, with no watcher to wake.
                        telemetry.count_settled(exposed.name, invocations.status_of(record))
                    elif handle is not None:
                        self.watch(id, exposed.name, handle)
        return await self._status_response(request, id, record, created=True, headers=noted)

    async def begin(
        self,
        exposed: Exposed,
        id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        owner: str = "",
        tags: dict[str, str] | None = None,
        rerun_of: str | None = None,
        priority: int | None = None,
        watch: bool = True,
    ) -> tuple[PromiseRecord, ResonateHandle[Any] | None]:
        """Start invocation ``id`` of ``exposed`` with bound arguments, or find it started.

        The same id with the same call is a replay (the stored record, no second
        execution); with another call, 422 ``idempotency-key-reused``. One call
        to the backend, the create; a backend that is down answers 503 and the
        create is dropped. Returns the record and, for a new invocation, its handle.
        ``tags``: the user's (part of the call); ``rerun_of``: the stored id of the
        invocation this one reruns; ``priority``: its place among waiting ones;
        ``watch``: whether a new invocation is watched until it settles (see
        :meth:`watch`), else the caller watches it or counts its settle.

        A function with flow control may refuse the start (429 ``rate-limited``) or,
        debounced, join it to the open invocation: the record returned is then that
        invocation's (its id is not ``id``).
        """
        handle: ResonateHandle[Any] | None
        tags = tags or {}
        extra = _search.stored_tags(tags)
        if rerun_of is not None:
            extra[_search.RERUN_TAG] = rerun_of
        if priority:
            extra[flow.PRIORITY_TAG] = str(priority)
        rules = exposed.flow
        opened: str | None = None
        if rules:
            client = self.runtime.client
            sig = exposed.signature
            await self.bounded(flow.admit(client, exposed.name, rules, sig, id, args, kwargs))
            joined, opened = await self.bounded(
                flow.debounce(client, exposed.name, rules, sig, id, args, kwargs)
            )
            if joined != id:
                found = await self._joined(joined)
                if invocations.status_of(found) == "pending":
                    return found, None
                # Settled before its quiet period ended (canceled): open a new one.
                await flow.forget_debounce(client, exposed.name, "", joined)
                joined, opened = await self.bounded(
                    flow.debounce(client, exposed.name, rules, sig, id, args, kwargs)
                )
                if joined != id:
                    return await self._joined(joined), None
        queued = False
        if rules:
            # In line before the create (see flow.queue), by the backend's clock.
            queued = await self.bounded(
                flow.queue(
                    self.runtime.client,
                    exposed.name,
                    rules,
                    exposed.signature,
                    id,
                    args,
                    kwargs,
                    priority=priority or 0,
                    lease=self.settings.lease_ttl,
                )
            )
        with _search.launching(id) as launch:
            handle = self.runtime.launch(exposed, id, args, kwargs, owner=owner, tags=extra)
        try:
            await self.bounded(handle.id())
        except Problem:
            # 503: the create is dropped, not sent once the backend is back.
            launch.abandon()
            if opened is not None:
                await flow.forget_debounce(self.runtime.client, exposed.name, opened, id)
            if queued:
                await flow.unqueue(self.runtime.client, exposed.name, id)
            raise
        # The create answers with the stored record, new or found: no read, unless
        # the answer did not come through here (a conflict carries no record).
        raw, created = _sdk.launched_record(launch)
        record = self._decoded(raw) if raw is not None else await self.read(id)
        if record is None:  # pragma: no cover - created, then gone
            raise self._unavailable("the invocation vanished after creation")
        if raw is None:
            created = record.tags.get(_search.LAUNCH_TAG) == launch.nonce
        if queued and not created:
            # A replay of an invocation that had no place in line (it ran, or it is
            # between attempts): the place made for it goes.
            await flow.unqueue(self.runtime.client, exposed.name, id)
        if not created:
            handle = None
        else:
            telemetry.annotate(id=id, function=exposed.name)
            telemetry.count_started(exposed.name)
            if self.settings.ui:
                self.feed.publish(id, record)
            if watch:
                self.watch(id, exposed.name, handle)
        if opened is None and exposed.flow.debounce is not None and not created:
            return record, None  # a debounced start joined its own open invocation
        self._check_replay(record, exposed, args, kwargs, tags)
        return record, handle

    def watch(self, id: str, function: str, handle: ResonateHandle[Any]) -> None:
        """Count new invocation ``id`` in the settled metric, and show it on the
        dashboard, once it settles (when either is on)."""
        if self.settings.ui or telemetry.counting():
            self.feed.watch(self, id, function, handle)

    async def _joined(self, id: str) -> PromiseRecord:
        """The record of the debounced invocation a start joined; created by the start
        that opened it, which may still be on its way to the backend."""
        delay = 0.01
        for _ in range(40):
            record = await self.read(id)
            if record is not None:
                return record
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)
        raise self._unavailable(f"the debounced invocation {id} this start joins is not stored")

    async def lookup(self, request: Request) -> tuple[str, PromiseRecord]:
        """The invocation the path names, as stored (under the caller's prefix)."""
        public = validate_id(request.path_params["id"])
        id = scoped(request.scope, public)
        record = await self.read(id)
        if record is None or invocations.function_of(record) is None:
            raise Problem("not-found", f"no invocation with id {public!r}{await self._kept()}")
        return id, record

    async def _kept(self) -> str:
        """What a 404 adds where the backend forgets: the embedded backend forgets
        settled invocations, the dev server everything when it restarts."""
        if self.settings.backend == "embedded":
            return (
                f" (the embedded backend keeps settled invocations for "
                f"{self.settings.embedded_retention:g}s, the {self.settings.embedded_keep} newest)"
            )
        if await self._on_dev_server():
            return (
                " (the backend is the `resonate-web dev` server, which keeps no state across "
                "restarts: an invocation started before it last restarted is gone)"
            )
        return ""

    async def _on_dev_server(self) -> bool:
        """Whether the backend is ``resonate-web dev`` (its ``/health`` says so); asked
        once, when a 404 first needs to know."""
        if self._dev_server is None and self.settings.backend == "http" and self.settings.url:
            try:
                async with httpx.AsyncClient(timeout=self.settings.backend_timeout) as http:
                    answer = await http.get(f"{self.settings.url}/health")
                body = answer.json() if answer.status_code == 200 else {}
                self._dev_server = isinstance(body, dict) and body.get("server") == DEV_SERVER
            except (httpx.HTTPError, ValueError):
                return False  # not known: asked again next time
        return bool(self._dev_server)

    async def status_document(self, id: str, prefix: str) -> dict[str, Any]:
        """The status document of invocation ``id`` with links under ``prefix``."""
        record = await self.read(id)
        if record is None or invocations.function_of(record) is None:
            raise Problem("not-found", f"no invocation with id {id!r}{await self._kept()}")
        return await self.document(prefix, id, record)

    async def status(self, request: Request) -> Response:
        wait, noted = self._wait(request)
        id, record = await self.lookup(request)
        if wait > 0:
            record = await self._wait_settled(id, record, time.monotonic() + wait)
        return await self._status_response(request, id, record, headers=noted)

    def _wait(self, request: Request) -> tuple[float, dict[str, str]]:
        """``?wait=``, clamped to the cap; a clamped wait is said in the
        ``Resonate-Wait-Capped`` header (the cap, in seconds)."""
        raw = request.query.get("wait")
        wait = parse_wait(raw, math.inf)
        cap = self.settings.wait_cap
        if wait <= cap:
            return wait, {}
        return cap, {WAIT_CAPPED: f"{cap:g}"}

    async def events(self, request: Request) -> Response:
        id, record = await self.lookup(request)
        return event_stream(self._event_stream(request, id, record))

    async def _event_stream(
        self, request: Request, id: str, record: PromiseRecord
    ) -> AsyncIterator[bytes]:
        yield sse_frame("status", await self.document(request.prefix, id, record, request.scope))
        if invocations.status_of(record) != "pending":
            return
        while invocations.status_of(record) == "pending":
            deadline = time.monotonic() + self.settings.keepalive
            try:
                record = await self._wait_settled(id, record, deadline)
            except Problem as problem:
                public = id.removeprefix(request.scope)
                yield sse_frame(
                    "error", problem.body(self.link(request.prefix, public) + "/events")
                )
                return
            if invocations.status_of(record) == "pending":
                yield b": keep-alive\n\n"
        yield sse_frame("status", await self.document(request.prefix, id, record, request.scope))

    # ── schedules (the logic is in resonate_web._core.schedules) ─────────────────

    @staticmethod
    def _unscoped(request: Request) -> None:
        """Schedules have one namespace: only a caller without an id prefix manages them."""
        if request.scope:
            raise Problem("forbidden", "schedules are managed by callers without an id prefix")

    async def create_schedule(self, request: Request) -> Response:
        self._unscoped(request)
        payload = json_object(
            request.body,
            request.headers.get("content-type"),
            body_limit=self.settings.body_limit,
            max_depth=self.settings.json_depth,
        )
        created, stored = await self.schedules.create(self.schedules.from_json(payload))
        doc = await self.schedules.document(stored, request.prefix)
        if not created:
            return Response(200, doc)
        return Response(201, doc, headers={"Location": doc["links"]["self"]})

    async def list_schedules(self, request: Request) -> Response:
        self._unscoped(request)
        found = await self.schedules.listing()
        return Response(
            200, {"schedules": [self.schedules.summary(s, request.prefix) for s in found]}
        )

    async def get_schedule(self, request: Request) -> Response:
        self._unscoped(request)
        return Response(200, await self.schedules.get(request.path_params["id"], request.prefix))

    async def delete_schedule(self, request: Request) -> Response:
        self._unscoped(request)
        await self.schedules.delete(request.path_params["id"])
        return Response(204)

    # ── waiting ─────────────────────────────────────────────────────────────

    async def _wait_settled(
        self,
        id: str,
        record: PromiseRecord,
        deadline: float,
        handle: ResonateHandle[Any] | None = None,
    ) -> PromiseRecord:
        """Wait until ``id`` settles or ``deadline`` (monotonic) passes; re-read it.

        Wakes on the SDK's settle notification (shared by every waiter on the
        id), or at the promise's own timeout, whichever is first: a promise that
        times out is not always pushed to the client promptly, so the waiter
        wakes at the deadline it knows and reads the outcome.
        """
        if invocations.status_of(record) != "pending":
            return record
        if self._waiters >= self.settings.max_waiters:
            raise Problem(
                "too-many-waiters",
                f"{self._waiters} requests are already waiting; retry later",
                headers={"Retry-After": "1"},
            )
        self._waiters += 1
        try:
            with self.runtime.pushed.waiting(id):
                while True:
                    if handle is None:
                        handle = await self.bounded(self.runtime.client.get(id))
                    # By the runtime's clock: a test's virtual one, if it runs on one.
                    until_timeout = (record.timeout_at - self.runtime.now_ms()) / 1000 + 0.05
                    remaining = min(deadline - time.monotonic(), max(until_timeout, 0.0))
                    if remaining > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(_sdk.settled(handle), remaining)
                    pushed = self.runtime.pushed.get(id)
                    # The document shows when it settled, which the notification does
                    # not carry: the record the backend pushed with it does; else it
                    # is read back.
                    if pushed is not None:
                        return self._settled(id, self._decoded(pushed))
                    settled = await self.read(id)
                    if settled is None:  # forgotten meanwhile (the embedded retention)
                        return record
                    if invocations.status_of(settled) != "pending" or remaining <= 0:
                        return self._settled(id, settled)
                    if deadline - time.monotonic() <= 0:
                        return settled
                    # Woken while it is still pending: the SDK's periodic listener
                    # refresh settles a handle as "gone" when it runs between the
                    # handle's subscription and its create. Wait on a fresh one.
                    handle = None
        finally:
            self._waiters -= 1

    def _settled(self, id: str, record: PromiseRecord) -> PromiseRecord:
        if invocations.status_of(record) != "pending":
            self.announce(id, record)
            self._remember(id, record)
        return record

    def announce(self, id: str, record: PromiseRecord) -> None:
        """Tell the dashboard's live list (if on) that ``id`` is now ``record``."""
        if self.settings.ui and self.feed.subscribers:
            self.feed.publish(id, record)

    # ── documents ───────────────────────────────────────────────────────────

    async def document(
        self, prefix: str, id: str, record: PromiseRecord, scope: str = ""
    ) -> dict[str, Any]:
        """The status document of stored invocation ``id``, shown to a caller whose ids
        are stored under ``scope`` (links under the mount ``prefix``)."""
        pending = invocations.status_of(record) == "pending"
        awaiting, failure = (
            await asyncio.gather(browse.awaiting(self, id), browse.last_failure(self, id))
            if pending
            else (None, None)
        )
        public = id.removeprefix(scope)
        waiting_for = await self.waiting_for([record]) if pending else {}
        return invocations.document(
            record,
            public_id=public,
            self_link=self.link(prefix, public),
            awaiting=[a.removeprefix(scope) for a in awaiting] if awaiting else None,
            failure=browse.failure_fields(failure, scope),
            scope=scope,
            waiting_for=waiting_for.get(id),
        )

    async def waiting_for(self, records: list[PromiseRecord]) -> dict[str, str]:
        """What each pending invocation among ``records`` whose function has flow
        control waits for (``concurrency``, ``rate``, ``debounce``), by id."""
        exposed = self.runtime.exposed
        names: dict[str, str] = {}
        for record in records:
            name = invocations.function_of(record)
            if name is not None and name in exposed and exposed[name].flow:
                names[record.id] = name
        if not names:
            return {}
        found, _ = await self.bounded(
            flow.waiting(self.runtime.client, list(names.values()), list(names))
        )
        return dict(found)

    async def _status_response(
        self,
        request: Request,
        id: str,
        record: PromiseRecord,
        *,
        created: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        doc = await self.document(request.prefix, id, record, request.scope)
        if doc["status"] != "pending":
            return Response(200, doc, headers=dict(headers or {}))
        headers = {**(headers or {}), "Retry-After": "1"}
        if created:
            headers["Location"] = doc["links"]["self"]
        return Response(202 if created else 200, doc, headers=headers)
