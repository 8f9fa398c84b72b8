"""The Resonate client for code that does not run on the runtime's loop.

resonate-sdk is asyncio-only and its client lives on one loop: the
:class:`~resonate_web.runtime.Portal`'s background loop for Flask and Django.
Ordinary (sync) views use :class:`SyncClient`; ``async def`` views, which a WSGI
framework runs on a fresh loop per request, use :class:`AsyncClient`. Both hop
every call onto the portal loop, so the client never lives on a request's loop.

The methods mirror the SDK's ``Resonate`` (``run``, ``rpc``, ``get``,
``schedule``, ``options``, ``promises``) with these conveniences:

* a function is named by its exposed name or by the exposed function object
  (whatever wrapper the runtime registered), at its exposed version;
* ``rpc`` and ``schedule`` dispatch to the function's target group (the
  settings' ``target`` unless the exposure names one), as the routes do;
* ``promises`` settles with plain values (no ``Value`` wrapping).

Values are decoded as the SDK decodes them: this is the application's own code
reading its own results, unlike the HTTP routes, which never load objects.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Self

from resonate.handle import ResonateHandle
from resonate.resonate import Resonate
from resonate.types import PromiseRecord, Value

from resonate_web.exposure import Exposed, Functions
from resonate_web.gateway import Gateway
from resonate_web.runtime import Portal, Runtime, Wrapper
from resonate_web.settings import Settings

__all__ = ["AsyncClient", "AsyncHandle", "Hosted", "SyncClient", "SyncHandle", "host"]

Func = str | Callable[..., Any]


class SyncHandle[T]:
    """A handle to an invocation, for sync code (an SDK handle on the portal loop)."""

    def __init__(self, portal: Portal, handle: ResonateHandle[T]) -> None:
        self._portal = portal
        self._handle = handle

    def id(self, timeout: float | None = None) -> str:
        """The invocation's id, once the backend confirmed it exists."""
        return self._portal.call(self._handle.id(), timeout)

    def result(self, timeout: float | None = None) -> T:
        """Block until the invocation settles (at most ``timeout`` seconds: then ``TimeoutError``).

        Returns its value, or raises what it raised.
        """
        return self._portal.call(self._handle.result(), timeout)

    def done(self) -> bool:
        """Whether the invocation has settled (does not block)."""
        return self._handle.done()


class AsyncHandle[T]:
    """A handle to an invocation, awaitable from any event loop."""

    def __init__(self, portal: Portal, handle: ResonateHandle[T]) -> None:
        self._portal = portal
        self._handle = handle

    async def id(self) -> str:
        return await self._portal.acall(self._handle.id())

    async def result(self) -> T:
        """Await the settled value (bound the wait with ``asyncio.timeout``)."""
        return await self._portal.acall(self._handle.result())

    def done(self) -> bool:
        return self._handle.done()


class _Calls:
    """The coroutines both facades run on the portal loop."""

    def __init__(
        self,
        portal: Portal,
        *,
        timeout: timedelta | None = None,
        target: str | None = None,
        version: int | None = None,
    ) -> None:
        self._portal = portal
        self._timeout = timeout
        self._target = target
        self._version = version

    def options(
        self,
        *,
        timeout: timedelta | None = None,
        target: str | None = None,
        version: int | None = None,
    ) -> Self:
        """A client whose calls carry these options (they replace, as in the SDK)."""
        return type(self)(self._portal, timeout=timeout, target=target, version=version)

    @property
    def _client(self) -> Resonate:
        return self._portal.runtime.client

    def _lookup(self, func: Func) -> tuple[str | Callable[..., Any], Exposed | None]:
        exposed = self._portal.runtime.exposed
        if isinstance(func, str):
            return func, exposed.get(func)
        for exp in exposed.values():
            if exp.fn is func:
                return exp.name, exp
        return func, None  # the SDK says whether it knows this object

    def _prepare(self, func: Func, dispatch: bool) -> tuple[Resonate, str | Callable[..., Any]]:
        name, exp = self._lookup(func)
        target = None
        if dispatch:
            target = self._target or (exp and exp.target) or self._portal.runtime.settings.target
        client = self._client.options(
            timeout=self._timeout or (exp.timeout if exp else None),
            target=target,
            version=self._version or (exp.version if exp else 1),
        )
        return client, name

    async def _run(
        self, id: str, func: Func, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> ResonateHandle[Any]:
        client, name = self._prepare(func, dispatch=False)
        return client.run(id, name, *args, **kwargs)

    async def _rpc(
        self, id: str, func: Func, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> ResonateHandle[Any]:
        client, name = self._prepare(func, dispatch=True)
        return client.rpc(id, name, *args, **kwargs)

    async def _get(self, id: str) -> ResonateHandle[Any]:
        return await self._client.get(id)

    async def _schedule(
        self,
        id: str,
        cron: str,
        func: Func,
        args: tuple[Any, ...] | None,
        kwargs: dict[str, Any] | None,
        promise_timeout: timedelta | None,
    ) -> str:
        client, name = self._prepare(func, dispatch=True)
        if not isinstance(name, str):
            raise TypeError(f"{func!r} is not exposed: schedule a function by its name")
        await client.schedule(
            id, cron, name, args, kwargs, promise_timeout, version=client.opts.version
        )
        return id

    async def _unschedule(self, id: str) -> None:
        await self._client.schedules.delete(id)

    async def _promise(self, op: str, id: str, data: Any) -> PromiseRecord:
        promises = self._client.promises
        if op == "get":
            return await promises.get(id)
        settle = {"resolve": promises.resolve, "reject": promises.reject, "cancel": promises.cancel}
        return await settle[op](id, Value(data=data))


class SyncClient(_Calls):
    """The Resonate client for sync code: every call hops onto the portal loop."""

    def _call[T](self, coro: Coroutine[Any, Any, T]) -> T:
        return self._portal.call(coro)

    def run(self, id: str, func: Func, *args: Any, **kwargs: Any) -> SyncHandle[Any]:
        """Start ``func`` in this process (durably); returns at once with a handle."""
        return SyncHandle(self._portal, self._call(self._run(id, func, args, kwargs)))

    def rpc(self, id: str, func: Func, *args: Any, **kwargs: Any) -> SyncHandle[Any]:
        """Dispatch ``func`` to its worker group; returns at once with a handle."""
        return SyncHandle(self._portal, self._call(self._rpc(id, func, args, kwargs)))

    def get(self, id: str) -> SyncHandle[Any]:
        """A handle to the existing invocation ``id``."""
        return SyncHandle(self._portal, self._call(self._get(id)))

    def schedule(
        self,
        id: str,
        cron: str,
        func: Func,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        promise_timeout: timedelta | None = None,
    ) -> str:
        """Run ``func`` on a cron schedule (dispatched to its group); returns the id."""
        return self._call(self._schedule(id, cron, func, args, kwargs, promise_timeout))

    def unschedule(self, id: str) -> None:
        """Delete schedule ``id``."""
        self._call(self._unschedule(id))

    @property
    def promises(self) -> SyncPromises:
        return SyncPromises(self)


class SyncPromises:
    """Read and settle durable promises (the ones ``ctx.promise()`` waits on)."""

    def __init__(self, client: SyncClient) -> None:
        self._client = client

    def get(self, id: str) -> PromiseRecord:
        return self._client._call(self._client._promise("get", id, None))

    def resolve(self, id: str, value: Any = None) -> PromiseRecord:
        return self._client._call(self._client._promise("resolve", id, value))

    def reject(self, id: str, error: Any = None) -> PromiseRecord:
        return self._client._call(self._client._promise("reject", id, error))

    def cancel(self, id: str, value: Any = None) -> PromiseRecord:
        return self._client._call(self._client._promise("cancel", id, value))


class AsyncClient(_Calls):
    """The Resonate client for ``async def`` code on any loop."""

    async def _call[T](self, coro: Coroutine[Any, Any, T]) -> T:
        return await self._portal.acall(coro)

    async def run(self, id: str, func: Func, *args: Any, **kwargs: Any) -> AsyncHandle[Any]:
        return AsyncHandle(self._portal, await self._call(self._run(id, func, args, kwargs)))

    async def rpc(self, id: str, func: Func, *args: Any, **kwargs: Any) -> AsyncHandle[Any]:
        return AsyncHandle(self._portal, await self._call(self._rpc(id, func, args, kwargs)))

    async def get(self, id: str) -> AsyncHandle[Any]:
        return AsyncHandle(self._portal, await self._call(self._get(id)))

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


class AsyncPromises:
    """:class:`SyncPromises`, awaitable."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, id: str) -> PromiseRecord:
        return await self._client._call(self._client._promise("get", id, None))

    async def resolve(self, id: str, value: Any = None) -> PromiseRecord:
        return await self._client._call(self._client._promise("resolve", id, value))

    async def reject(self, id: str, error: Any = None) -> PromiseRecord:
        return await self._client._call(self._client._promise("reject", id, error))

    async def cancel(self, id: str, value: Any = None) -> PromiseRecord:
        return await self._client._call(self._client._promise("cancel", id, value))


@dataclass(frozen=True)
class Hosted:
    """Everything a sync framework keeps for one app, built by :func:`host`."""

    settings: Settings
    runtime: Runtime
    gateway: Gateway
    portal: Portal
    client: SyncClient
    async_client: AsyncClient


def host(settings: Settings, functions: Functions, *, wrap: Wrapper | None = None) -> Hosted:
    """A runtime on its own portal loop, with the gateway and clients over it.

    Nothing starts here: the portal starts the loop and the client on first use,
    in the process that uses it (so after a fork).
    """
    runtime = Runtime(settings, functions, wrap=wrap)
    portal = Portal(runtime)
    return Hosted(
        settings, runtime, Gateway(runtime), portal, SyncClient(portal), AsyncClient(portal)
    )
