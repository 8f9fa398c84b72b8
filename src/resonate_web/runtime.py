"""The Resonate client, its event loop, and the bridge from sync code to it.

resonate-sdk is asyncio-only: one client lives on one running loop. An async
framework (FastAPI) starts the runtime on its own loop. Sync frameworks (Flask,
Django under WSGI) get a :class:`Portal`: one background loop thread per
process, started lazily on first use and again after a fork, so a server that
forks after import (gunicorn) gives every worker its own loop and client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from resonate.connections import LocalConnection
from resonate.resonate import Resonate

from resonate_web.exposure import DurableFn, Exposed, Functions, _resolve, registrations
from resonate_web.settings import ConfigurationError, Settings

logger = logging.getLogger("resonate_web")


class EmbeddedConnection(LocalConnection):
    """The SDK's in-process backend, delivering only what is addressed to this process.

    The SDK's ``LocalConnection`` hands every message to every receiver, since
    in one process there is nobody else to route to. But a function dispatched
    to another group (``expose_remote``, or ``mode="dispatch"``) has no code
    here: delivered anyway, it would fail to run, be released and be
    redelivered in a tight loop. Like a real server, this keeps such a task
    pending for a worker of its group, which on the embedded backend never
    comes (say so in ``GET /functions``: its mode is ``dispatch``).
    """

    def _dispatch_messages(self, messages: list[Any]) -> None:
        own = self.resolve_target(self._group)
        mine = [m for m in messages if m.address == own or m.address.startswith("local://uni@")]
        super()._dispatch_messages(mine)


def build_client(
    settings: Settings,
    *,
    group: str | None = None,
    pid: str | None = None,
) -> Resonate:
    """A Resonate client for ``settings``' backend, built but not started."""
    group = group or settings.group
    pid = pid or uuid.uuid4().hex
    common: dict[str, Any] = {
        "group": group,
        "pid": pid,
        "ttl": timedelta(seconds=settings.lease_ttl),
        "env": {},
        "autostart": False,
    }
    match settings.backend:
        case "embedded":
            return Resonate(network=EmbeddedConnection(pid=pid, group=group), **common)
        case "http":
            return Resonate(url=settings.url, token=settings.token, **common)
        case "postgres":
            try:
                from resonate_pg import PostgresConnection
            except ImportError:
                raise ConfigurationError(
                    "a postgresql:// URL needs the resonate-pg connector: "
                    "pip install 'resonate-web[pg]'"
                ) from None
            network = PostgresConnection(conninfo=settings.url, pid=pid, group=group)
            return Resonate(network=network, **common)
    raise AssertionError(settings.backend)  # pragma: no cover


Wrapper = Callable[[DurableFn], DurableFn]


def within(context: Callable[[], AbstractContextManager[Any]]) -> Wrapper:
    """A :class:`Runtime` ``wrap=`` hook running every function inside ``context()``.

    Flask passes ``app.app_context`` so durable functions see ``current_app``.
    Sync and async functions are both wrapped (an async one holds the context
    across its awaits); the wrapper keeps the function's signature, with its
    annotations resolved in the function's own module, so the SDK binds and
    coerces arguments exactly as for the unwrapped function.
    """

    def wrap(fn: DurableFn) -> DurableFn:
        wrapper: DurableFn
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - an async callable instance
        ):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with context():
                    return await fn(*args, **kwargs)

            wrapper = run_async
        else:

            @functools.wraps(fn)
            def run_sync(*args: Any, **kwargs: Any) -> Any:
                with context():
                    return fn(*args, **kwargs)

            wrapper = run_sync
        globalns = getattr(inspect.unwrap(fn), "__globals__", {})
        sig = inspect.signature(fn)
        resolved = sig.replace(
            parameters=[
                p.replace(annotation=_resolve(p.annotation, globalns))
                for p in sig.parameters.values()
            ],
            return_annotation=_resolve(sig.return_annotation, globalns),
        )
        target: Any = wrapper
        target.__signature__ = resolved
        return wrapper

    return wrap


def _check_gateway_group(settings: Settings, exposed: dict[str, Exposed]) -> None:
    """A gateway must not join a group it dispatches to: it would be handed that work."""
    if settings.backend == "embedded":
        return
    clash = sorted(e.name for e in exposed.values() if e.target == settings.group)
    if clash:
        raise ConfigurationError(
            f"the gateway's group {settings.group!r} is the target of {', '.join(clash)}: "
            "a gateway never joins a worker group (set RESONATE_GROUP to a group of its own)"
        )


class Runtime:
    """Owns one Resonate client for one app: builds, registers, starts and stops it."""

    def __init__(
        self,
        settings: Settings,
        functions: Functions,
        *,
        wrap: Wrapper | None = None,
        group: str | None = None,
    ) -> None:
        self.settings = settings
        self.functions = functions
        self.exposed: dict[str, Exposed] = functions.resolve(settings)
        if group is None:
            _check_gateway_group(settings, self.exposed)
        self._wrap = wrap
        self._group = group
        self._client: Resonate | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backend_check: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._client is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the resonate-web runtime is not started")
        return self._loop

    @property
    def client(self) -> Resonate:
        """The started Resonate client (on :attr:`loop`)."""
        if self._client is None:
            raise RuntimeError(
                "the resonate-web runtime is not started: for FastAPI include the "
                "ResonateRouter in the app (its lifespan starts the runtime)"
            )
        return self._client

    async def start(self) -> Resonate:
        """Build, register and start the client on the running loop. Idempotent."""
        if self._client is not None:
            return self._client
        client = build_client(self.settings, group=self._group)
        for exp in registrations(self.functions):
            assert exp.fn is not None
            fn = self._wrap(exp.fn) if self._wrap else exp.fn
            client.register(fn, name=exp.name, version=exp.version, retry_policy=exp.retry_policy)
        client.start()
        self._loop = asyncio.get_running_loop()
        self._client = client
        logger.info(
            "resonate-web runtime started (backend=%s, group=%s)",
            self.settings.backend,
            self._group or self.settings.group,
        )
        if self.settings.backend == "postgres" and self._group is None:
            # A gateway says at once what keeps its database from serving (no
            # schema, no timer driver); a worker says it in its own start-up.
            self._backend_check = asyncio.ensure_future(self._check_postgres())
        return client

    async def _check_postgres(self) -> None:
        from resonate_web.pgcheck import mask_dsn, startup_problems

        url = self.settings.url or ""
        try:
            problems = await startup_problems(url, self.settings.backend_timeout)
        except Exception as exc:  # pragma: no cover - a diagnosis never stops the app
            logger.debug("the Postgres start-up check failed: %s", exc)
            return
        if problems:
            logger.error(
                "the Postgres backend at %s cannot serve:\n  %s",
                mask_dsn(url),
                "\n  ".join(problems),
            )

    async def stop(self) -> None:
        """Stop the client, waiting at most ``shutdown_timeout`` seconds."""
        client, self._client = self._client, None
        check, self._backend_check = self._backend_check, None
        if check is not None and not check.done():
            check.cancel()
        if client is None:
            return
        try:
            await asyncio.wait_for(client.stop(), self.settings.shutdown_timeout)
        except TimeoutError:
            logger.warning(
                "resonate-web: client did not stop within %.1fs; abandoning in-flight work "
                "(it stays durable and resumes elsewhere)",
                self.settings.shutdown_timeout,
            )


class Portal:
    """A background event loop thread that hosts a :class:`Runtime` for sync code.

    Started lazily on first use, in the process that uses it: after a fork the
    child finds the parent's thread gone and starts its own.

    The embedded backend keeps every invocation in the memory of the process
    that started it, so it cannot serve more than one process. The portal
    refuses (with a :class:`~resonate_web.settings.ConfigurationError` naming
    the fix) when it can tell that it would be one of several:

    * the server says so. WSGI servers set ``wsgi.multiprocess`` in every
      request's environ when the same app also runs in other processes
      (gunicorn with ``-w`` > 1, uWSGI with several processes, mod_wsgi daemon
      processes); adapters pass it to :meth:`check_server`. The flag is the
      server's own statement of its worker count, so it needs no
      server-specific code: ``gunicorn -w 1`` (one worker forked from a master
      that imported the app but never serves) says ``False`` and is fine;
      ``gunicorn -w 4`` says ``True`` on every request of every worker.
    * the portal was started in one process and is now used in a forked child
      of it: the child would start a second, empty backend beside the one the
      parent holds, and ids from one would be 404 in the other.

    Once refused, a portal stays refused in that process, so the client facade
    fails the same way as the routes.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._refusal: str | None = None

    def check_server(self, *, multiprocess: bool) -> None:
        """Record what the serving process looks like; raise if it cannot work.

        ``multiprocess`` is the request's WSGI ``wsgi.multiprocess``.
        """
        if multiprocess and self._refusal is None and self._embedded:
            self._refusal = "this server runs the app in several processes"
        self._check()

    @property
    def _embedded(self) -> bool:
        return self.runtime.settings.backend == "embedded"

    def _check(self) -> None:
        if self._refusal is not None:
            raise ConfigurationError(
                f"the embedded backend cannot serve this deployment: {self._refusal}, and "
                "invocations held in one process's memory would be 404 in another. Set "
                "RESONATE_URL to a Resonate server (`resonate-web dev` for development) or "
                "a postgresql:// DSN, or run a single process (gunicorn -w 1 --threads N)"
            )

    def _ensure(self) -> asyncio.AbstractEventLoop:
        pid = os.getpid()
        if self._pid == pid and self._loop is not None and self._refusal is None:
            return self._loop
        with self._lock:
            self._check()
            if self._pid == pid and self._loop is not None:
                return self._loop
            if self._pid is not None and self._pid != pid:
                if self._embedded:
                    self._refusal = (
                        f"it was started in process {self._pid} and this process "
                        f"({pid}) is a fork of it"
                    )
                    self._check()
                # Forked: the parent's thread and client do not exist here.
                self.runtime._client = None
                self.runtime._loop = None
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="resonate-web-portal", daemon=True)
            thread.start()
            ready.wait()
            asyncio.run_coroutine_threadsafe(self.runtime.start(), loop).result()
            self._loop, self._thread, self._pid = loop, thread, pid
            return loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._ensure()

    def call[T](self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the portal loop and wait for it from sync code.

        Not from the portal's own thread (a durable function running inline):
        waiting there would block the loop that has to do the work.
        """
        try:
            loop = self._ensure()
            if self._thread is not None and threading.current_thread() is self._thread:
                raise RuntimeError(
                    "a blocking resonate-web call from the runtime's own loop (inside a "
                    "durable function) would deadlock: use the Context (ctx.run, ctx.rpc)"
                )
        except BaseException:
            coro.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    async def acall[T](self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the portal loop from any other loop (or the same one)."""
        try:
            loop = self._ensure()
        except BaseException:
            coro.close()
            raise
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - called without a loop
            running = None
        if running is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def iterate(self, agen: AsyncIterator[bytes]) -> Iterator[bytes]:
        """Drive an async iterator on the portal loop, as a sync iterator."""
        try:
            while True:
                try:
                    yield self.call(_anext(agen))
                except StopAsyncIteration:
                    return
        finally:
            with contextlib.suppress(Exception):
                self.call(_aclose(agen), timeout=5)

    async def aiterate(self, agen: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Drive an async iterator on the portal loop from another loop."""
        try:
            while True:
                try:
                    yield await self.acall(_anext(agen))
                except StopAsyncIteration:
                    return
        finally:
            with contextlib.suppress(Exception):
                await self.acall(_aclose(agen))

    def close(self) -> None:
        """Stop the runtime and the loop thread (used at interpreter or app shutdown)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or self._pid != os.getpid():
                return
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.runtime.stop(), loop).result(
                    self.runtime.settings.shutdown_timeout + 1
                )
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(5)
            self._loop = self._thread = self._pid = None


async def _anext(agen: AsyncIterator[bytes]) -> bytes:
    return await agen.__anext__()


async def _aclose(agen: AsyncIterator[bytes]) -> None:
    close: Callable[[], Awaitable[None]] | None = getattr(agen, "aclose", None)
    if close is not None:
        await close()
