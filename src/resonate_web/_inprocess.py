"""The client every handler gets: the routes' semantics, from Python.

One client for every framework: :class:`AsyncClient` for ``async def`` code
(FastAPI endpoints, async Flask and Django views), :class:`SyncClient` for
plain ``def`` code (Flask and Django views, a FastAPI ``def`` endpoint,
management commands). Both run every call on the runtime's loop (FastAPI's
own loop, or the portal's background loop for Flask and Django), so the SDK
client never lives on a request's loop.

A call does what the matching route does:

* :meth:`~AsyncClient.run` starts an exposed function by name (or by the
  exposed function object) exactly as ``POST /functions/{name}`` does: the
  arguments are bound and validated against its signature, it runs inline or
  is dispatched to its target group as its exposure says, at its version, with
  its timeout and retry policy; the same id again with the same call is the
  same invocation;
* :meth:`~AsyncClient.status` is ``GET /invocations/{id}``'s status document;
* :meth:`AsyncHandle.result` waits for the outcome, with a timeout;
* :attr:`~AsyncClient.promises` reads and settles promises with plain JSON
  values;
* :meth:`~AsyncClient.schedule`, :meth:`~AsyncClient.unschedule` and
  :attr:`~AsyncClient.schedules` (``get``, ``list``) are ``POST``, ``DELETE``
  and ``GET /schedules``, through the same code as the routes;
* :attr:`~AsyncClient.sdk` is the raw ``resonate.Resonate`` client, for what
  the routes do not cover (it lives on the runtime's loop).

Errors are :class:`~resonate_web.Problem` exceptions with the routes' slugs
(``unknown-function``, ``invalid-arguments``, ``idempotency-key-reused``,
``not-found``, ``conflict``, ``invalid-cron``, ``backend-unavailable``).
Results are decoded as the SDK decodes them: this is the application's own
code reading its own results, unlike the HTTP routes, which never load objects.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from resonate.handle import ResonateHandle
from resonate.resonate import Resonate

from resonate_web._core import invocations
from resonate_web._core import sdk as _sdk
from resonate_web._core.exposure import Functions
from resonate_web._core.parsing import (
    new_id,
    validate_id,
    validate_priority,
    validate_promise_id,
    validate_tags,
)
from resonate_web._core.runtime import Portal, Runtime, Wrapper
from resonate_web._gateway import operations, settling
from resonate_web._gateway.auth import Authorize
from resonate_web._gateway.contract import Request
from resonate_web._gateway.router import Gateway
from resonate_web.problems import Problem
from resonate_web.settings import Settings

__all__ = ["AsyncClient", "AsyncHandle", "Hosted", "SyncClient", "SyncHandle", "host"]

Func = str | Callable[..., Any]


class _Calls:
    """The coroutines both clients run on the runtime's loop."""

    def __init__(self, portal: Portal, gateway: Gateway | None = None) -> None:
        self._portal = portal
        self._gateway = gateway or Gateway(portal.runtime)

    @property
    def _runtime(self) -> Runtime:
        return self._portal.runtime

    async def _start(
        self,
        id: str | None,
        func: Func,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        tags: Mapping[str, str] | None = None,
        priority: int | None = None,
    ) -> tuple[str, ResonateHandle[Any] | None]:
        exposed = self._runtime.function(func)
        id = new_id() if id is None else validate_id(id)
        checked = validate_tags(dict(tags) if tags is not None else None)
        call_args, call_kwargs = exposed.bind(list(args), kwargs)
        record, handle = await self._gateway.begin(
            exposed,
            id,
            call_args,
            call_kwargs,
            tags=checked,
            priority=validate_priority(priority),
        )
        return record.id, handle

    async def _handle(self, id: str, handle: ResonateHandle[Any] | None) -> ResonateHandle[Any]:
        if handle is not None:
            return handle
        return await self._gateway.bounded(self._runtime.client.get(id))

    async def _outcome(self, id: str, handle: ResonateHandle[Any] | None) -> Any:
        handle = await self._handle(id, handle)
        while (await _sdk.settled(handle)).state == "rejected":
            # The SDK's periodic listener refresh settles a handle as "gone" (rejected)
            # when it runs between the handle's subscription and its create: a
            # rejection is read back, and while the invocation is pending, waited
            # for again on a fresh handle.
            record = await self._gateway.read(id)
            if record is None:
                break
            handle = await self._handle(id, None)  # settled as stored, or pending
            if invocations.status_of(record) != "pending":
                break
        return await handle.result()

    async def _status(self, id: str) -> dict[str, Any]:
        return await self._gateway.status_document(validate_id(id), self._runtime.settings.prefix)

    async def _settled_now(self, id: str) -> bool:
        record = await self._gateway.read(id)
        return record is not None and invocations.status_of(record) != "pending"

    async def _schedule(
        self,
        id: str,
        cron: str,
        func: Func,
        args: tuple[Any, ...] | None,
        kwargs: dict[str, Any] | None,
        promise_timeout: timedelta | None,
    ) -> str:
        book = self._gateway.schedules
        definition = book.define(id, cron, func, list(args or ()), kwargs or {}, promise_timeout)
        await book.create(definition)
        return id

    async def _unschedule(self, id: str) -> None:
        await self._gateway.schedules.delete(id)

    async def _schedule_document(self, id: str) -> dict[str, Any]:
        return await self._gateway.schedules.get(id, self._runtime.settings.prefix)

    async def _schedule_list(self) -> list[dict[str, Any]]:
        book = self._gateway.schedules
        prefix = self._runtime.settings.prefix
        return [book.summary(stored, prefix) for stored in await book.listing()]

    async def _promise(self, op: str, id: str, data: Any) -> dict[str, Any]:
        validate_promise_id(id)
        record = await self._gateway.read(id)
        if record is None:
            raise Problem("not-found", f"no promise with id {id!r}")
        if op != "get":
            action: settling.Action = op  # type: ignore[assignment]
            if record.state == "pending":
                value = settling.rejection(data) if action == "reject" else data
                record = await settling.settle(self._gateway, id, action, value)
            settling.check(record, action, "promise")
        origin = record.tags.get("resonate:origin")
        return settling.promise_document(record, origin if origin != id else None)

    async def _cancel(self, id: str) -> dict[str, Any]:
        record = await self._gateway.read(validate_id(id))
        if record is None or invocations.function_of(record) is None:
            raise Problem("not-found", f"no invocation with id {id!r}")
        if record.state == "pending":
            record = await settling.settle(self._gateway, id, "cancel", None)
        settling.check(record, "cancel", "invocation")
        return await self._gateway.document(self._runtime.settings.prefix, id, record)

    def _request(
        self,
        filters: Mapping[str, Any],
        tags: Mapping[str, str] | None,
        path_params: dict[str, str] | None = None,
    ) -> Request:
        """The route's request for an operation run in process (no principal)."""
        return Request(
            method="POST",
            path_params=path_params or {},
            query={k: str(v) for k, v in filters.items() if v is not None},
            prefix=self._runtime.settings.prefix,
            tag_filters=tuple(f"{k}:{v}" for k, v in (tags or {}).items()),
        )

    async def _rerun(self, id: str, new_id: str | None) -> dict[str, Any]:
        request = self._request({"id": new_id}, None, {"id": id})
        body: dict[str, Any] = (await operations.rerun(self._gateway, request)).body
        return body

    async def _bulk(
        self, action: operations.Bulk, filters: dict[str, Any], tags: Mapping[str, str] | None
    ) -> dict[str, Any]:
        request = self._request(filters, tags)
        body: dict[str, Any] = (await operations.bulk(self._gateway, action, request)).body
        return body

    async def _stats(self, name: str, window: int | None) -> dict[str, Any]:
        request = self._request({"window": window}, None, {"name": name})
        body: dict[str, Any] = (await operations.stats(self._gateway, request)).body
        return body


def _bulk_filters(
    function: str | None,
    status: str | None,
    schedule: str | None,
    limit: int | None,
    cursor: str | None,
) -> dict[str, Any]:
    return {
        "function": function,
        "status": status,
        "schedule": schedule,
        "limit": limit,
        "cursor": cursor,
    }


class SyncHandle:
    """An invocation started (or found) by :class:`SyncClient`."""

    def __init__(self, client: SyncClient, id: str, handle: ResonateHandle[Any] | None) -> None:
        self._client = client
        self.id = id
        self._handle = handle

    def result(self, timeout: float | None = None) -> Any:
        """Block until the invocation settles (at most ``timeout`` seconds: then
        ``TimeoutError``). Returns its value, or raises what it raised."""
        return self._client._call(self._client._outcome(self.id, self._handle), timeout)

    def status(self) -> dict[str, Any]:
        """Its status document, as ``GET /invocations/{id}`` returns it."""
        return self._client.status(self.id)

    def done(self) -> bool:
        """Whether it has settled (one backend read)."""
        return self._client._call(self._client._settled_now(self.id))


class AsyncHandle:
    """An invocation started (or found) by :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient, id: str, handle: ResonateHandle[Any] | None) -> None:
        self._client = client
        self.id = id
        self._handle = handle

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - as the sync one
        """Await the settled value (``TimeoutError`` after ``timeout`` seconds)."""
        return await self._client._call(self._client._outcome(self.id, self._handle), timeout)

    async def status(self) -> dict[str, Any]:
        return await self._client.status(self.id)

    async def done(self) -> bool:
        return await self._client._call(self._client._settled_now(self.id))


class SyncClient(_Calls):
    """The client for sync code: every call hops onto the runtime's loop and waits."""

    def _call[T](self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._portal.call(coro, timeout)

    def run(
        self,
        id: str | None,
        func: Func,
        *args: Any,
        tags: Mapping[str, str] | None = None,
        priority: int | None = None,
        **kwargs: Any,
    ) -> SyncHandle:
        """Start exposed function ``func`` as invocation ``id`` (``None``: a new
        unguessable id), as ``POST /functions/{name}`` does; returns once the
        backend holds it. ``tags``: the invocation's tags (contract v3), part of
        the call like its arguments; ``priority``: its place among waiting
        invocations (flow control), higher first."""
        started, handle = self._call(self._start(id, func, args, kwargs, tags, priority))
        return SyncHandle(self, started, handle)

    def get(self, id: str) -> SyncHandle:
        """A handle to the existing invocation ``id``."""
        self.status(id)
        return SyncHandle(self, id, None)

    def status(self, id: str) -> dict[str, Any]:
        """The status document of invocation ``id`` (``not-found`` when unknown)."""
        return self._call(self._status(id))

    def cancel(self, id: str) -> dict[str, Any]:
        """Cancel invocation ``id`` as ``POST /invocations/{id}/cancel`` does; its document."""
        return self._call(self._cancel(id))

    def rerun(self, id: str, *, new_id: str | None = None) -> dict[str, Any]:
        """Start settled invocation ``id`` again (its function, arguments and tags) as
        invocation ``new_id`` (``None``: a new id), as ``POST /invocations/{id}/rerun``;
        its status document, with ``rerun_of``. ``conflict`` while ``id`` is pending."""
        return self._call(self._rerun(id, new_id))

    def cancel_many(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Cancel the invocations the filters find (one filter at least), at most
        ``limit`` (default 100), newest first: ``{matched, done, skipped, next}``."""
        filters = _bulk_filters(function, status, schedule, limit, cursor)
        return self._call(self._bulk("cancel", filters, tags))

    def rerun_many(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Rerun the invocations the filters find, as :meth:`cancel_many`."""
        filters = _bulk_filters(function, status, schedule, limit, cursor)
        return self._call(self._bulk("rerun", filters, tags))

    def stats(self, func: str, *, window: int | None = None) -> dict[str, Any]:
        """``func``'s counts by status, durations and failure rate over the last
        ``window`` seconds (default 3600), as ``GET /functions/{name}/stats``."""
        return self._call(self._stats(func, window))

    def schedule(
        self,
        id: str,
        cron: str,
        func: Func,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        promise_timeout: timedelta | None = None,
    ) -> str:
        """Run exposed ``func`` on cron schedule ``cron`` (five fields, UTC) as
        ``POST /schedules`` does; returns the id. The same definition again is a
        no-op; another one under the same id is ``conflict``."""
        return self._call(self._schedule(id, cron, func, args, kwargs, promise_timeout))

    def unschedule(self, id: str) -> None:
        """Delete schedule ``id`` (``not-found`` when there is none)."""
        self._call(self._unschedule(id))

    @property
    def promises(self) -> SyncPromises:
        return SyncPromises(self)

    @property
    def schedules(self) -> SyncSchedules:
        return SyncSchedules(self)

    @property
    def sdk(self) -> Resonate:
        """The raw SDK client. It lives on the runtime's loop: call its coroutines
        there (``Portal.call``), not on another loop."""
        return self._runtime.client


class SyncPromises:
    """Read and settle durable promises (the ones ``ctx.promise()`` waits on) with
    plain JSON values; each returns ``{"id", "status", "value"}``."""

    def __init__(self, client: SyncClient) -> None:
        self._client = client

    def get(self, id: str) -> dict[str, Any]:
        return self._client._call(self._client._promise("get", id, None))

    def resolve(self, id: str, value: Any = None) -> dict[str, Any]:
        return self._client._call(self._client._promise("resolve", id, value))

    def reject(self, id: str, error: Any = None) -> dict[str, Any]:
        return self._client._call(self._client._promise("reject", id, error))

    def cancel(self, id: str, value: Any = None) -> dict[str, Any]:
        return self._client._call(self._client._promise("cancel", id, value))


class SyncSchedules:
    """Read schedules: the documents of ``GET /schedules/{id}`` and ``GET /schedules``."""

    def __init__(self, client: SyncClient) -> None:
        self._client = client

    def get(self, id: str) -> dict[str, Any]:
        """Schedule ``id``: its definition, next runs and latest ticks (``not-found``)."""
        return self._client._call(self._client._schedule_document(id))

    def list(self) -> list[dict[str, Any]]:
        """Every schedule of an exposed function, by id."""
        return self._client._call(self._client._schedule_list())


class AsyncClient(_Calls):
    """The client for ``async def`` code on any loop: :class:`SyncClient`, awaitable."""

    async def _call[T](
        self,
        coro: Coroutine[Any, Any, T],
        timeout: float | None = None,  # noqa: ASYNC109 - the result() timeout
    ) -> T:
        return await self._portal.acall(coro, timeout)

    async def run(
        self,
        id: str | None,
        func: Func,
        *args: Any,
        tags: Mapping[str, str] | None = None,
        priority: int | None = None,
        **kwargs: Any,
    ) -> AsyncHandle:
        started, handle = await self._call(self._start(id, func, args, kwargs, tags, priority))
        return AsyncHandle(self, started, handle)

    async def get(self, id: str) -> AsyncHandle:
        await self.status(id)
        return AsyncHandle(self, id, None)

    async def status(self, id: str) -> dict[str, Any]:
        return await self._call(self._status(id))

    async def cancel(self, id: str) -> dict[str, Any]:
        return await self._call(self._cancel(id))

    async def rerun(self, id: str, *, new_id: str | None = None) -> dict[str, Any]:
        return await self._call(self._rerun(id, new_id))

    async def cancel_many(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        filters = _bulk_filters(function, status, schedule, limit, cursor)
        return await self._call(self._bulk("cancel", filters, tags))

    async def rerun_many(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        filters = _bulk_filters(function, status, schedule, limit, cursor)
        return await self._call(self._bulk("rerun", filters, tags))

    async def stats(self, func: str, *, window: int | None = None) -> dict[str, Any]:
        return await self._call(self._stats(func, window))

    async def schedule(
        self,
        id: str,
        cron: str,
        func: Func,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        promise_timeout: timedelta | None = None,
    ) -> str:
        return await self._call(self._schedule(id, cron, func, args, kwargs, promise_timeout))

    async def unschedule(self, id: str) -> None:
        await self._call(self._unschedule(id))

    @property
    def promises(self) -> AsyncPromises:
        return AsyncPromises(self)

    @property
    def schedules(self) -> AsyncSchedules:
        return AsyncSchedules(self)

    @property
    def sdk(self) -> Resonate:
        """The raw SDK client (on the runtime's loop; in FastAPI, the app's loop)."""
        return self._runtime.client


class AsyncPromises:
    """:class:`SyncPromises`, awaitable."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, id: str) -> dict[str, Any]:
        return await self._client._call(self._client._promise("get", id, None))

    async def resolve(self, id: str, value: Any = None) -> dict[str, Any]:
        return await self._client._call(self._client._promise("resolve", id, value))

    async def reject(self, id: str, error: Any = None) -> dict[str, Any]:
        return await self._client._call(self._client._promise("reject", id, error))

    async def cancel(self, id: str, value: Any = None) -> dict[str, Any]:
        return await self._client._call(self._client._promise("cancel", id, value))


class AsyncSchedules:
    """:class:`SyncSchedules`, awaitable."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, id: str) -> dict[str, Any]:
        return await self._client._call(self._client._schedule_document(id))

    async def list(self) -> list[dict[str, Any]]:
        return await self._client._call(self._client._schedule_list())


@dataclass(frozen=True)
class Hosted:
    """Everything an adapter keeps for one app, built by :func:`host`."""

    settings: Settings
    runtime: Runtime
    gateway: Gateway
    portal: Portal
    client: SyncClient
    async_client: AsyncClient


def host(
    settings: Settings,
    functions: Functions,
    *,
    wrap: Wrapper | None = None,
    own_loop: bool = True,
    authorize: Authorize | None = None,
) -> Hosted:
    """A runtime with its portal, gateway and clients.

    Nothing starts here. With ``own_loop`` (Flask, Django) the portal starts
    its loop thread and the client when the adapter starts it in a serving
    process (:mod:`resonate_web._core.startup`) or on first use, in the process that uses it
    (so after a fork); without (FastAPI) the framework's lifespan attaches the
    portal to its own loop.
    """
    runtime = Runtime(settings, functions, wrap=wrap)
    portal = Portal(runtime, own_loop=own_loop)
    gateway = Gateway(runtime, authorize=authorize)
    return Hosted(
        settings,
        runtime,
        gateway,
        portal,
        SyncClient(portal, gateway),
        AsyncClient(portal, gateway),
    )
