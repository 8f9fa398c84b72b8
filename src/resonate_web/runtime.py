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
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any

from resonate.connections import LocalConnection
from resonate.resonate import Resonate

from resonate_web.exposure import DurableFn, Exposed, Functions, registrations
from resonate_web.settings import ConfigurationError, Settings

logger = logging.getLogger("resonate_web")


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
            return Resonate(network=LocalConnection(pid=pid, group=group), **common)
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
        self._wrap = wrap
        self._group = group
        self._client: Resonate | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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
        return client

    async def stop(self) -> None:
        """Stop the client, waiting at most ``shutdown_timeout`` seconds."""
        client, self._client = self._client, None
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
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        pid = os.getpid()
        if self._pid == pid and self._loop is not None:
            return self._loop
        with self._lock:
            if self._pid == pid and self._loop is not None:
                return self._loop
            if self._pid is not None and self._pid != pid:
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
        """Run ``coro`` on the portal loop and wait for it from sync code."""
        loop = self._ensure()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    async def acall[T](self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the portal loop from any other loop (or the same one)."""
        loop = self._ensure()
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
