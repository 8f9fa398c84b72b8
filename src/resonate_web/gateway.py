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
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from resonate.error import ConnectorError, ResonateError, ServerError
from resonate.handle import PromiseResult, ResonateHandle
from resonate.types import PromiseRecord

from resonate_web import _sdk, invocations, openapi, schedules
from resonate_web.exposure import Exposed
from resonate_web.parsing import (
    idempotency_key,
    json_object,
    media_type_is_json,
    new_id,
    parse_json,
    parse_wait,
    validate_id,
)
from resonate_web.problems import PROBLEM_CONTENT_TYPE, Problem
from resonate_web.runtime import ConnectionWatch, Runtime, describe_backend

logger = logging.getLogger("resonate_web")

JSON = "application/json"
#: How many direct children of a pending invocation are read to find the
#: promises it awaits (``awaiting``).
MAX_AWAITING_PROBE = 128
_HEALTH_PROBE_ID = "resonate-web-health-probe"


@dataclass(frozen=True)
class Request:
    """A neutral HTTP request. ``headers`` keys are lower case; ``query`` holds
    each parameter's first value; ``prefix`` is the mount prefix as served (so
    links point back at this mount)."""

    method: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    prefix: str = ""
    principal: Any = None


@dataclass
class Response:
    """A neutral HTTP response: a JSON body, or an event stream."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = JSON
    stream: AsyncIterator[bytes] | None = None

    def content(self) -> bytes:
        if self.body is None and self.status == 204:
            return b""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


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
    Route("status", "GET", "/invocations/{id}", "Read (or long-poll) an invocation"),
    Route("events", "GET", "/invocations/{id}/events", "Stream an invocation's status", True),
    Route("health", "GET", "/health", "Backend health"),
    Route("openapi", "GET", "/openapi.json", "This API's OpenAPI document"),
    Route("list_schedules", "GET", "/schedules", "List the schedules"),
    Route("create_schedule", "POST", "/schedules", "Create a cron schedule"),
    Route("get_schedule", "GET", "/schedules/{id}", "Read a schedule and its latest ticks"),
    Route("delete_schedule", "DELETE", "/schedules/{id}", "Delete a schedule"),
)


def problem_response(problem: Problem, instance: str) -> Response:
    return Response(
        status=problem.status,
        body=problem.body(instance),
        headers=problem.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def sse_frame(event: str, data: Any) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


class Gateway:
    """Serves the contract's routes for one :class:`Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self._waiters = 0
        self._handlers: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "list_functions": self.list_functions,
            "start": self.start,
            "status": self.status,
            "events": self.events,
            "health": self.health,
            "openapi": self.openapi,
            "list_schedules": self.list_schedules,
            "create_schedule": self.create_schedule,
            "get_schedule": self.get_schedule,
            "delete_schedule": self.delete_schedule,
        }
        #: Schedules' logic, shared with the clients (resonate_web.schedules).
        self.schedules = schedules.Schedules(
            runtime, bounded=self.bounded, status=self.status_document
        )

    # ── dispatch ────────────────────────────────────────────────────────────

    async def handle(self, route: str, request: Request, instance: str) -> Response:
        """Run route ``route``; every contract error becomes a problem response."""
        try:
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
            raise

    async def _watched[T](self, awaitable: Awaitable[T], watch: ConnectionWatch) -> T:
        """``awaitable``, cut short by the first failed connection attempt (then 503)."""
        work: asyncio.Future[Any] = asyncio.ensure_future(awaitable)
        failure: asyncio.Future[Any] = watch.failure()
        try:
            done, _ = await asyncio.wait(
                [work, failure],
                timeout=self.settings.backend_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            watch.forget(failure)
            failure.cancel()
        if work in done:
            result: T = work.result()
            return result
        work.cancel()
        if failure in done:
            raise self._unavailable(f"{await watch.cause()} (the client keeps retrying)")
        raise TimeoutError

    async def read(self, id: str) -> PromiseRecord | None:
        """A plain read of promise ``id`` (values decoded to JSON data), or ``None``."""
        try:
            raw = await self.bounded(_sdk.read_promise(self.runtime.client, id))
        except ServerError as exc:
            if exc.code == 404:
                return None
            raise self._unavailable(f"server error {exc.code}") from None
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
        return Response(200, openapi.document(self.runtime.exposed, request.prefix))

    async def health(self, request: Request) -> Response:
        await self.read(_HEALTH_PROBE_ID)
        return Response(200, {"status": "ok", "backend": self.settings.backend})

    def _call_arguments(self, request: Request) -> tuple[list[Any], dict[str, Any]]:
        body = request.body
        if len(body) > self.settings.body_limit:
            raise Problem(
                "payload-too-large",
                f"the body exceeds the limit of {self.settings.body_limit} bytes",
            )
        if not body:
            return [], {}
        if not media_type_is_json(request.headers.get("content-type")):
            raise Problem(
                "unsupported-media-type",
                "send the arguments as application/json (or a +json type)",
            )
        payload = parse_json(body, max_depth=self.settings.json_depth)
        if not isinstance(payload, dict):
            raise Problem("invalid-json", "the body must be a JSON object")
        unknown = sorted(set(payload) - {"args", "kwargs"})
        if unknown:
            raise Problem(
                "invalid-json",
                f"unknown member(s) {', '.join(map(repr, unknown))}: the body holds the "
                'arguments under "args" (a list) and "kwargs" (an object), as in '
                '{"args": [1, 2]} or {"kwargs": {"a": 1, "b": 2}}',
            )
        args = payload.get("args", [])
        kwargs = payload.get("kwargs", {})
        if not isinstance(args, list):
            raise Problem("invalid-json", "'args' must be a JSON array")
        if not isinstance(kwargs, dict):
            raise Problem("invalid-json", "'kwargs' must be a JSON object")
        return args, kwargs

    def _invocation_id(self, request: Request) -> str:
        header = request.headers.get("idempotency-key")
        if header is not None:
            return idempotency_key(header)
        query_id = request.query.get("id")
        if query_id is not None:
            return validate_id(query_id)
        return new_id()

    def _link(self, prefix: str, id: str) -> str:
        return f"{prefix}/invocations/{id}"

    def _check_replay(
        self, record: PromiseRecord, exposed: Exposed, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        stored = invocations.call_of(record)
        if stored != (exposed.name, exposed.version, args, kwargs):
            raise Problem(
                "idempotency-key-reused",
                "this id already names an invocation with a different function or arguments",
            )

    async def start(self, request: Request) -> Response:
        exposed = self.runtime.function(request.path_params["name"])
        wait = parse_wait(request.query.get("wait"), self.settings.wait_cap)
        id = self._invocation_id(request)
        args, kwargs = exposed.bind(*self._call_arguments(request))
        record, handle = await self.begin(exposed, id, args, kwargs)
        if wait > 0:
            record = await self._wait_settled(id, record, time.monotonic() + wait, handle)
        return await self._status_response(request, id, record, created=True)

    async def begin(
        self, exposed: Exposed, id: str, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[PromiseRecord, ResonateHandle[Any] | None]:
        """Start invocation ``id`` of ``exposed`` with bound arguments, or find it started.

        The same id with the same call is a replay (the stored record, no second
        execution); with another call, 422 ``idempotency-key-reused``. The
        backend is read first, so one that is down answers 503 before anything
        is created. Returns the record and, for a new invocation, its handle.
        """
        record = await self.read(id)
        handle = None
        if record is None:
            handle = self.runtime.launch(exposed, id, args, kwargs)
            await self.bounded(handle.id())
            record = await self.read(id)
            if record is None:  # pragma: no cover - created, then gone
                raise self._unavailable("the invocation vanished after creation")
        self._check_replay(record, exposed, args, kwargs)
        return record, handle

    async def _lookup(self, request: Request) -> tuple[str, PromiseRecord]:
        id = validate_id(request.path_params["id"])
        record = await self.read(id)
        if record is None or invocations.function_of(record) is None:
            raise Problem("not-found", f"no invocation with id {id!r}")
        return id, record

    async def status_document(self, id: str, prefix: str) -> dict[str, Any]:
        """The status document of invocation ``id`` with links under ``prefix``."""
        record = await self.read(id)
        if record is None or invocations.function_of(record) is None:
            raise Problem("not-found", f"no invocation with id {id!r}")
        return await self._document(prefix, id, record)

    async def status(self, request: Request) -> Response:
        wait = parse_wait(request.query.get("wait"), self.settings.wait_cap)
        id, record = await self._lookup(request)
        if wait > 0:
            record = await self._wait_settled(id, record, time.monotonic() + wait)
        return await self._status_response(request, id, record)

    async def events(self, request: Request) -> Response:
        id, record = await self._lookup(request)
        return Response(
            200,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            stream=self._event_stream(request, id, record),
        )

    async def _event_stream(
        self, request: Request, id: str, record: PromiseRecord
    ) -> AsyncIterator[bytes]:
        yield sse_frame("status", await self._document(request.prefix, id, record))
        if invocations.status_of(record) != "pending":
            return
        while invocations.status_of(record) == "pending":
            deadline = time.monotonic() + self.settings.keepalive
            try:
                record = await self._wait_settled(id, record, deadline)
            except Problem as problem:
                yield sse_frame("error", problem.body(self._link(request.prefix, id) + "/events"))
                return
            if invocations.status_of(record) == "pending":
                yield b": keep-alive\n\n"
        yield sse_frame("status", await self._document(request.prefix, id, record))

    # ── schedules (the logic is in resonate_web.schedules) ─────────────────

    async def create_schedule(self, request: Request) -> Response:
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
        found = await self.schedules.listing()
        return Response(
            200, {"schedules": [self.schedules.summary(s, request.prefix) for s in found]}
        )

    async def get_schedule(self, request: Request) -> Response:
        return Response(200, await self.schedules.get(request.path_params["id"], request.prefix))

    async def delete_schedule(self, request: Request) -> Response:
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
            if handle is None:
                handle = await self.bounded(self.runtime.client.get(id))
            until_timeout = record.timeout_at / 1000 - time.time() + 0.05
            remaining = min(deadline - time.monotonic(), max(until_timeout, 0.0))
            settled: PromiseResult | None = None
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    settled = await asyncio.wait_for(_sdk.settled(handle), remaining)
        finally:
            self._waiters -= 1
        if settled is not None and settled.state != "rejected":
            # The notification carries the outcome: no need to read it back. (A
            # rejection is read back, so its document never comes from a
            # notification the client made up for a promise that is gone.)
            value = msgspec.structs.replace(settled.value, data=self._decode(settled.value))
            return msgspec.structs.replace(record, state=settled.state, value=value)
        return await self.read(id) or record

    # ── documents ───────────────────────────────────────────────────────────

    async def _awaiting(self, id: str) -> list[str]:
        """Pending promises created by ``id`` that someone outside must settle."""
        found: list[str] = []
        for n in range(1, MAX_AWAITING_PROBE + 1):
            child = await self.read(_sdk.child_id(id, n))
            if child is None:
                break
            if invocations.status_of(child) == "pending" and invocations.is_external(child):
                found.append(child.id)
        return found

    async def _document(self, prefix: str, id: str, record: PromiseRecord) -> dict[str, Any]:
        awaiting = await self._awaiting(id) if invocations.status_of(record) == "pending" else None
        return invocations.document(
            record, public_id=id, self_link=self._link(prefix, id), awaiting=awaiting
        )

    async def _status_response(
        self, request: Request, id: str, record: PromiseRecord, *, created: bool = False
    ) -> Response:
        doc = await self._document(request.prefix, id, record)
        if doc["status"] != "pending":
            return Response(200, doc)
        headers = {"Retry-After": "1"}
        if created:
            headers["Location"] = self._link(request.prefix, id)
        return Response(202 if created else 200, doc, headers=headers)
