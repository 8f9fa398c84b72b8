"""The Resonate client, its event loop, and the bridge from sync code to it.

resonate-sdk is asyncio-only: one client lives on one running loop. An async
framework (FastAPI) starts the runtime on its own loop. Sync frameworks (Flask,
Django under WSGI) get a :class:`Portal`: one background loop thread per
process, started with the process that serves (see :mod:`resonate_web._core.startup`)
or else on first use, and again after a fork, so a server that forks after
import (gunicorn) gives every worker its own loop and client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import msgspec
from resonate.codec import enc_hook
from resonate.context import Context
from resonate.handle import ResonateHandle
from resonate.resonate import Resonate
from resonate.retry import RetryPolicy

from resonate_web._core import flow, schedules, telemetry, timekeeping
from resonate_web._core import sdk as _sdk
from resonate_web._core import search as _search
from resonate_web._core.exposure import (
    SDK_DEFAULT_RETRY_POLICY,
    DurableFn,
    Exposed,
    Functions,
    registrations,
    resolved_signature,
)
from resonate_web.problems import Problem
from resonate_web.settings import ConfigurationError, Settings, did_you_mean

logger = logging.getLogger("resonate_web")

#: Seconds an embedded-backend runtime waits for running functions when it stops.
EMBEDDED_GRACE = 1.0


class WatchedTask:
    """A task waiting on the backend, canceled when a connection attempt fails."""

    __slots__ = ("task", "tripped")

    def __init__(self) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always awaited from a task
            raise RuntimeError("a backend call is awaited outside a task")
        self.task = task
        self.tripped = False

    def trip(self) -> None:
        if not self.tripped and not self.task.done():
            self.tripped = True
            self.task.cancel()

    def uncancel(self) -> bool:
        """Whether the cancellation being raised is this watch's alone (then undone)."""
        return self.tripped and self.task.uncancel() == 0


class ConnectionWatch:
    """Tells waiting requests at once when a Resonate server connection fails.

    The SDK's HTTP connection retries a refused connection forever, with
    backoff, so a durable workflow survives a server restart. A request handler
    should not sit out its whole timeout behind that: it is the connection's
    ``backoff``, so every failed attempt wakes whoever is waiting on
    :meth:`failure` (the gateway then answers 503 naming the cause) while the
    SDK goes on retrying underneath.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._waiters: set[WatchedTask] = set()

    def delay(self, attempt: int) -> float:
        """The SDK's backoff (1 s doubling to 60 s); records the failure."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            waiter.trip()
        return float(min(2.0**attempt, 60.0)) if attempt >= 0 else 1.0

    def enlist(self) -> WatchedTask:
        """The current task, canceled by the next failed connection attempt until
        :meth:`discharge`."""
        waiter = WatchedTask()
        self._waiters.add(waiter)
        return waiter

    def discharge(self, waiter: WatchedTask) -> None:
        self._waiters.discard(waiter)

    async def cause(self) -> str:
        """Why the server cannot be reached, from one quick connection attempt."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(1.0):
                _, writer = await asyncio.open_connection(parts.hostname, port)
        except TimeoutError:
            return "connecting timed out"
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
            return f"{reason.lower()} ({parts.hostname}:{port})"
        writer.close()
        return "the connection failed (the server accepts connections now; retrying)"


def build_client(
    settings: Settings,
    *,
    group: str | None = None,
    pid: str | None = None,
    watch: ConnectionWatch | None = None,
    clock: timekeeping.VirtualClock | None = None,
    sweep: timekeeping.Waker | None = None,
) -> Resonate:
    """A Resonate client for ``settings``' backend, built but not started.

    With a virtual ``clock`` (embedded backend only) the client, its backend
    (whose deadline sweep waits on ``sweep``) and its lease heartbeat all run
    on it.
    """
    group = group or settings.group
    pid = pid or uuid.uuid4().hex
    common: dict[str, Any] = {
        "group": group,
        "pid": pid,
        "ttl": timedelta(seconds=settings.lease_ttl),
        "env": {},
        "autostart": False,
        "retry_policy": SDK_DEFAULT_RETRY_POLICY,
    }
    match settings.backend:
        case "embedded" if clock is not None:
            assert sweep is not None
            leases = _sdk.LeaseKeeper(pid, settings.lease_ttl, clock.heartbeat)
            client = Resonate(
                network=_sdk.embedded_connection(
                    pid=pid, group=group, clock=clock.now_ms, sweep=sweep.sleep
                ),
                heartbeat=leases.heartbeat,
                clock=clock.now_ms,
                sleeper=clock.backoff,
                # Settles reach handles as pushes; the refresh poll would be a
                # deadline every few virtual seconds.
                subscription_refresh_secs=0,
                **common,
            )
            leases.bind(client)
            return client
        case "embedded":
            leases = _sdk.LeaseKeeper(pid, settings.lease_ttl)
            client = Resonate(
                network=_sdk.embedded_connection(pid=pid, group=group),
                heartbeat=leases.heartbeat,
                **common,
            )
            leases.bind(client)
            return client
        case "http":
            assert settings.url is not None
            network = _sdk.http_connection(
                settings.url, auth=settings.token, backoff=watch or ConnectionWatch(settings.url)
            )
            source = _sdk.event_stream(settings.url, pid=pid, group=group, auth=settings.token)
            client = Resonate(network=network, sources=[source], **common)
            _sdk.attach_stream(client)
            return client
        case "postgres":
            assert settings.url is not None
            # Sessions in UTC: resonate-pg computes a schedule's next tick in the
            # session's time zone.
            conninfo = schedules.utc_sessions(settings.url)
            try:
                network = _sdk.postgres_connection(conninfo, pid=pid, group=group)
            except ImportError:
                raise ConfigurationError(
                    "a postgresql:// URL needs the resonate-pg connector: "
                    "pip install 'resonate-web[pg]'"
                ) from None
            return Resonate(network=network, **common)
    raise AssertionError(settings.backend)  # pragma: no cover


Wrapper = Callable[[DurableFn], DurableFn]


def is_async(fn: DurableFn) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an async callable instance
    )


def keep_signature(wrapper: DurableFn, fn: DurableFn) -> DurableFn:
    """Give ``wrapper`` ``fn``'s signature, annotations resolved in ``fn``'s module,
    so the SDK binds and coerces arguments exactly as for ``fn``."""
    target: Any = wrapper
    target.__signature__ = resolved_signature(fn)
    return wrapper


def within(context: Callable[[], AbstractContextManager[Any]]) -> Wrapper:
    """A :class:`Runtime` ``wrap=`` hook running every function inside ``context()``.

    Flask passes ``app.app_context`` so durable functions see ``current_app``.
    Sync and async functions are both wrapped (an async one holds the context
    across its awaits; a sync one enters it in the thread it runs in).
    """

    def wrap(fn: DurableFn) -> DurableFn:
        wrapper: DurableFn
        if is_async(fn):

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
        return keep_signature(wrapper, fn)

    return wrap


def in_thread(fn: DurableFn) -> DurableFn:
    """A sync function as an async one that runs it in a worker thread.

    The runtime's event loop serves requests (FastAPI, Django under ASGI) and
    renews leases: a ``def`` durable function that blocks (I/O, ``time.sleep``,
    the ORM) must not block it. An ``async def`` function is returned as is.
    """
    if is_async(fn):
        return fn

    @functools.wraps(fn)
    async def threaded(*args: Any, **kwargs: Any) -> Any:
        with timekeeping.user_code():
            return await asyncio.to_thread(fn, *args, **kwargs)

    return keep_signature(threaded, fn)


#: Set by an attempt whose failure no retry can mend (a result that is not JSON):
#: the SDK consults the policy in the same task, right after the attempt.
_FINAL: contextvars.ContextVar[bool] = contextvars.ContextVar("resonate_web_final", default=False)


class FinalAware:
    """A retry policy that gives up at once after an attempt marked final."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def next(self, attempt: int) -> int | None:
        return None if _FINAL.get() else self.policy.next(attempt)


def _check_result(name: str, value: Any) -> None:
    """Refuse a result the backend could not store, as the function's own failure."""
    try:
        msgspec.json.encode(value, enc_hook=enc_hook)
    except (TypeError, ValueError, msgspec.MsgspecError) as exc:
        _FINAL.set(True)
        raise TypeError(
            f"{name} returned a value that cannot be stored as JSON ({type(value).__name__}): {exc}"
        ) from None


async def _traceparent_of(client: Resonate | None, origin: str) -> str | None:
    """The traceparent the request that started invocation ``origin`` left in its tags."""
    if client is None or not telemetry.active():
        return None
    try:
        record = await _sdk.read_promise(client, origin)
    except Exception:  # a trace is not worth failing the function for
        return None
    return record.tags.get(_search.TRACEPARENT_TAG)


async def _settled_elsewhere(client: Resonate | None, origin: str) -> bool:
    """Whether invocation ``origin`` was settled by someone else (a cancel, its timeout)
    while an attempt of it ran here: the SDK would retry it all the same."""
    if client is None:
        return False
    try:
        record = await _sdk.read_promise(client, origin)
    except Exception:  # the backend will say so at the next attempt: retry as planned
        return False
    return record.state != "pending"


def observed(
    name: str, fn: DurableFn, policy: RetryPolicy, client: Resonate | None = None
) -> DurableFn:
    """``fn`` (async) logging each failed attempt at WARNING, with its traceback.

    The SDK retries a failing function silently (by default 30 times, the
    delay doubling from 1 s), so without this a function that raises on its
    first line looks like one that hangs. Each record names the invocation,
    the attempt and what happens next. A result that cannot be stored as JSON
    is the function's failure, never retried (the SDK would otherwise hand the
    task back and have it run again, forever).

    Each attempt runs in a span (with OpenTelemetry configured) whose parent is
    the request that started the invocation, and its log records carry the
    invocation id (:class:`~resonate_web._core.telemetry.InvocationFilter`).
    """
    attempts: dict[str, int] = {}

    @functools.wraps(fn)
    async def run(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        with telemetry.invocation(ctx.info.id), timekeeping.attempt():
            return await attempt_once(ctx, *args, **kwargs)

    async def attempt_once(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        id = ctx.info.id
        attempt = attempts.get(id, 0) + 1
        attempts[id] = attempt
        retrying = False
        _FINAL.set(False)
        parent = await _traceparent_of(client, ctx.info.origin_id)
        try:
            with telemetry.function_span(name, id, ctx.info.origin_id, attempt, parent):
                result = await fn(ctx, *args, **kwargs)
                _check_result(name, result)
            return result
        except flow.Withdrawn as exc:
            _FINAL.set(True)  # settled while it waited: nothing ran, nothing to retry
            logger.info("resonate-web: %s", exc)
            raise
        except Exception as exc:
            final = _FINAL.get() or _sdk.is_workflow(ctx)
            delay = None if final else policy.next(attempt)
            if delay is not None and await _settled_elsewhere(client, ctx.info.origin_id):
                _FINAL.set(True)  # canceled (or timed out) meanwhile: no retry for nobody
                delay = None
                outcome = "not retried: the invocation was settled meanwhile (canceled?)"
            elif delay is not None:
                outcome = f"retrying in {delay}s"
            elif _FINAL.get():
                outcome = "not retried: the invocation rejects"
            else:
                outcome = "no retry left: the invocation rejects"
            retrying = delay is not None
            logger.warning(
                "resonate-web: %s (invocation %s) attempt %d failed with %s: %s; %s",
                name,
                id,
                attempt,
                type(exc).__name__,
                exc,
                outcome,
                exc_info=True,
            )
            if retrying:
                _note_failure(ctx, name, attempt, exc, delay, step=None)
            raise
        finally:
            if not retrying:
                attempts.pop(id, None)

    return keep_signature(run, fn)


def _note_failure(
    ctx: Context,
    name: str,
    attempt: int,
    exc: BaseException,
    delay: float | None,
    *,
    step: str | None,
) -> None:
    """Record a failed attempt that will be retried, for the status document's
    ``attempts`` and ``last_error`` (contract v3)."""
    now = _sdk.context_now(ctx)
    _sdk.note_failure(
        ctx,
        step or ctx.info.id,
        attempt,
        {
            "function": name,
            "step": step,
            "attempts": attempt,
            "type": type(exc).__name__,
            "message": str(exc),
            "at": now,
            "next_attempt_at": None if delay is None else now + int(delay * 1000),
        },
    )


def _step_failed(
    ctx: Context, name: str, attempt: int, exc: BaseException, delay: float | None, policy: Any
) -> None:
    """A failed attempt of a ``ctx.run`` step (the SDK retries one without a word):
    logged at WARNING by the process that ran it, and recorded while it is retried.
    A function resonate-web registered reports its own (see :func:`observed`)."""
    if isinstance(policy, FinalAware):
        return
    outcome = f"retrying in {delay}s" if delay is not None else "no retry left: the step rejects"
    logger.warning(
        "resonate-web: step %s (%s of invocation %s) attempt %d failed with %s: %s; %s",
        name,
        ctx.info.id,
        ctx.info.origin_id,
        attempt,
        type(exc).__name__,
        exc,
        outcome,
        exc_info=exc,
    )
    if delay is not None:
        _note_failure(ctx, name, attempt, exc, delay, step=ctx.info.id)


def _visible(log: logging.Logger) -> None:
    """Show ``log``'s INFO records on stderr when the application configured no logging.

    Servers such as uvicorn configure only their own loggers; without this, the
    start-up line naming the backend would be dropped (Python shows only
    warnings from an unconfigured logger). An application that configures
    logging decides for itself.
    """
    if logging.getLogger().handlers or log.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s: %(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


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


def describe_backend(settings: Settings) -> str:
    """One line naming the backend (credentials masked), for logs and errors."""
    match settings.backend:
        case "embedded":
            return "the embedded in-process backend"
        case "http":
            return f"the Resonate server at {settings.display_url}"
        case _:
            return f"Postgres at {settings.display_url}"


class Runtime:
    """Owns one Resonate client for one app: builds, registers, starts and stops it.

    It also holds the one launch path: :meth:`function` finds an exposed
    function, :meth:`launch` starts it the way its exposure says (inline or
    dispatched to its target group, at its version, with its timeout), for the
    routes, the clients and Django's ``dispatch`` alike.
    """

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
        self._wrap = wrap
        self._group = group
        self._client: Resonate | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._registered: set[tuple[str, int]] = set()
        #: The client with each exposed function's options (see :meth:`_launch`).
        self._launchers: dict[str, tuple[Exposed, Resonate]] = {}
        self._revision = -1
        self._exposed: dict[str, Exposed] = {}
        self._internal: dict[str, Exposed] = {}
        self.watch = (
            ConnectionWatch(settings.url) if settings.url and settings.backend == "http" else None
        )
        #: Settled records the backend pushes, for the ids requests here wait on.
        self.pushed = _sdk.PushedSettles()
        #: Background work of the started client: declaring schedules, firing them.
        self._chores: list[asyncio.Task[None]] = []
        #: The virtual clock it runs on (a test's ``resonate_clock``), if any.
        self.clock: timekeeping.VirtualClock | None = None
        #: The schedule ticker's wait on :attr:`clock`.
        self.ticker: timekeeping.Waker | None = None
        self._sweep: timekeeping.Waker | None = None
        #: The gateway serving this runtime (set by the gateway).
        self.gateway: Any = None
        self._refresh()

    @property
    def exposed(self) -> dict[str, Exposed]:
        """The functions served, by name: what is exposed now, not only at start-up."""
        if self.functions.revision != self._revision:
            self._refresh()
        return self._exposed

    def _refresh(self) -> None:
        revision = self.functions.revision
        exposed = self.functions.resolve(self.settings)
        if self._group is None:
            _check_gateway_group(self.settings, exposed)
        self._internal = {name: e for name, e in exposed.items() if e.internal}
        self._exposed = {name: e for name, e in exposed.items() if not e.internal}
        self._revision = revision
        if self._client is not None:
            self._register(self._client)

    def _register(self, client: Resonate) -> None:
        for exp in registrations(self.functions):
            key = (exp.name, exp.version)
            if key in self._registered:
                continue
            assert exp.fn is not None
            fn = self._wrap(exp.fn) if self._wrap else exp.fn
            policy = exp.retry_policy or SDK_DEFAULT_RETRY_POLICY
            fn = in_thread(fn)
            rules = exp.flow.overridden(self.settings.limits.get(exp.name))
            if rules:
                signature = exp.binder.signature if exp.binder else None
                gate = flow.gated(exp.name, rules, signature, fn, client, self.settings.lease_ttl)
                fn = keep_signature(gate, fn)
            fn = observed(exp.name, fn, policy, client)
            client.register(fn, name=exp.name, version=exp.version, retry_policy=FinalAware(policy))
            self._registered.add(key)
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

    def function(self, func: str | Callable[..., Any]) -> Exposed:
        """The exposed function named ``func`` (or exposed as the object ``func``)."""
        exposed = self.exposed
        if isinstance(func, str):
            found = exposed.get(func)
        else:
            found = next((e for e in exposed.values() if e.fn is func), None)
        if found is None:
            hint = did_you_mean(func, exposed) if isinstance(func, str) else ""
            raise Problem("unknown-function", f"no function named {func!r} is exposed{hint}")
        return found

    @property
    def listed(self) -> dict[str, Exposed]:
        """The functions whose invocations the list route shows: the exposed ones and
        the internal ones (started from Python, read like any invocation)."""
        exposed = self.exposed
        return {**self._internal, **exposed} if self._internal else exposed

    def internal(self, name: str) -> Exposed:
        """The function registered as ``internal`` under ``name`` (launched from Python
        only, never by the routes)."""
        if self.functions.revision != self._revision:
            self._refresh()
        found = self._internal.get(name)
        if found is None:
            raise Problem("unknown-function", f"no internal function named {name!r} is registered")
        return found

    def launch(
        self,
        exposed: Exposed,
        id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        owner: str = "",
        tags: dict[str, str] | None = None,
    ) -> ResonateHandle[Any]:
        """Start ``exposed`` as invocation ``id`` with bound arguments: the one launch path.

        Returns the SDK's handle at once; the durable promise is created in the
        background (``await handle.id()`` confirms it), tagged with ``owner``
        (the caller's id prefix) so listings find it, and with the stored ``tags``.
        """
        with _search.owned_by(owner, tags), _search.traced(telemetry.traceparent()):
            return self._launch(exposed, id, args, kwargs)

    def _launch(
        self, exposed: Exposed, id: str, args: list[Any], kwargs: dict[str, Any]
    ) -> ResonateHandle[Any]:
        client = self.client
        # The SDK's options() copies the client; the copy is reusable (its docs), so
        # it is made once per function and client, not on every start.
        held = self._launchers.get(exposed.name)
        if held is None or held[0] is not exposed:
            target = None if exposed.mode == "inline" else exposed.target
            options = client.options(
                timeout=exposed.timeout, target=target, version=exposed.version
            )
            held = self._launchers[exposed.name] = (exposed, options)
        opts = held[1]
        if exposed.mode == "inline":
            return opts.run(id, exposed.name, *args, **kwargs)
        return opts.rpc(id, exposed.name, *args, **kwargs)

    async def start(self) -> Resonate:
        """Build, register and start the client on the running loop. Idempotent."""
        if self._client is not None:
            return self._client
        problem = _sdk.sdk_version_problem()
        if problem:
            logger.warning("resonate-web: %s", problem)
        _sdk.quiet_settled_elsewhere()
        _sdk.steps_in_threads(timekeeping.user_code)
        _sdk.name_steps()
        _sdk.report_failures(_step_failed)
        clock = timekeeping.active()
        if clock is not None and self.settings.backend != "embedded":
            raise ConfigurationError(
                "resonate_clock: the virtual clock runs only on the embedded backend, and "
                f"this app runs on {describe_backend(self.settings)}: a server or a database "
                "keeps its own time. Leave RESONATE_URL (and the url setting) unset in the "
                "tests that use resonate_clock"
            )
        self.clock = clock
        if clock is not None:
            self._sweep = clock.waker("the embedded backend's sweep of due deadlines")
            self.ticker = clock.waker("a schedule's tick")
        client = build_client(
            self.settings, group=self._group, watch=self.watch, clock=clock, sweep=self._sweep
        )
        self._registered.clear()
        self._launchers.clear()
        self._register(client)
        self.pushed.attach(client)
        client.start()
        self._loop = asyncio.get_running_loop()
        self._client = client
        self._log_started()
        if clock is not None:
            clock.attach(self)
        self._chores = [asyncio.create_task(schedules.Schedules(self).declare())]
        if self.settings.backend == "embedded":
            # The SDK's in-process backend stores schedules but never fires them.
            self._chores.append(asyncio.create_task(schedules.fire_embedded(self)))
            self._chores.append(asyncio.create_task(self._prune_embedded()))
        return client

    def now_ms(self) -> int:
        """The time (unix ms): the virtual clock's when it runs on one, else the wall's."""
        if self.clock is not None:
            return self.clock.now_ms()
        return time.time_ns() // 1_000_000

    def _unclock(self) -> None:
        clock, self.clock = self.clock, None
        if clock is None:
            return
        clock.detach(self)
        for waker in (self._sweep, self.ticker):
            if waker is not None:
                clock.forget_waker(waker)
        self._sweep = self.ticker = None

    def prune_now(self) -> int:
        """Forget settled invocations past the embedded backend's retention; how many."""
        if self._client is None or self.settings.backend != "embedded":
            return 0
        cutoff = self.now_ms() - int(self.settings.embedded_retention * 1000)
        return _sdk.prune_embedded(
            self._client, settled_before=cutoff, keep=self.settings.embedded_keep
        )

    async def _prune_embedded(self) -> None:
        """Keep the embedded backend to its retention (``embedded_retention`` seconds,
        the ``embedded_keep`` newest): it keeps everything, and slows as it grows."""
        interval = min(max(self.settings.embedded_retention / 4, 0.05), 30.0)
        tick = min(interval, 1.0)
        # Past the count by a tenth, it prunes at once (the check is a len()), so
        # memory stays flat under load; by age, every quarter of the retention.
        over = self.settings.embedded_keep + max(self.settings.embedded_keep // 10, 100)
        due = time.monotonic() + interval
        while True:
            await asyncio.sleep(tick)
            if time.monotonic() < due and _sdk.embedded_size(self.client) <= over:
                continue
            due = time.monotonic() + interval
            forgotten = self.prune_now()
            if forgotten:
                logger.debug("resonate-web: forgot %d settled invocation(s)", forgotten)

    async def schedules_declared(self) -> None:
        """Wait until the schedules declared with ``expose(schedule=...)`` are stored."""
        if self._chores:
            await asyncio.shield(self._chores[0])

    def _log_started(self) -> None:
        _visible(logger)
        group = self._group or self.settings.group
        if self.settings.backend == "embedded":
            logger.warning(
                "resonate-web: running on %s: state is kept in this process's memory, lost "
                "on restart and not shared with other processes. Set RESONATE_URL to a "
                "Resonate server or a postgresql:// DSN for anything that matters",
                describe_backend(self.settings),
            )
        else:
            logger.info(
                "resonate-web: running on %s (group %s, pid %d)",
                describe_backend(self.settings),
                group,
                os.getpid(),
            )
        if self.settings.backend == "postgres" and self._group is None:
            # A gateway says at once what keeps its database from serving (no
            # schema, no timer driver); a worker says it in its own start-up.
            self._backend_check = asyncio.ensure_future(self._check_postgres())

    async def _check_postgres(self) -> None:
        from resonate_web._core.pgcheck import mask_dsn, startup_problems

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
        self._unclock()
        chores, self._chores = self._chores, []
        for chore in chores:
            chore.cancel()
        if chores:
            await asyncio.wait(chores)
        client, self._client = self._client, None
        self._loop = None
        check, self._backend_check = self._backend_check, None
        if check is not None and not check.done():
            check.cancel()
        if client is None:
            return
        # On the embedded backend nothing outlives the process: a function still
        # running is lost either way, so stopping does not wait long for it.
        grace = self.settings.shutdown_timeout
        if self.settings.backend == "embedded":
            grace = min(grace, EMBEDDED_GRACE)
        try:
            await asyncio.wait_for(client.stop(), grace)
        except TimeoutError:
            logger.warning(
                "resonate-web: client did not stop within %.1fs; abandoning in-flight work%s",
                grace,
                ""
                if self.settings.backend == "embedded"
                else " (it stays durable and resumes elsewhere)",
            )

    def forget(self) -> None:
        """Drop the client without stopping it (it belongs to a parent process's loop)."""
        self._unclock()
        self._client = None
        self._loop = None
        self._chores = []


#: Every portal of this process (the test clock restarts those it must).
_PORTALS: weakref.WeakSet[Portal] = weakref.WeakSet()


def portals() -> list[Portal]:
    """The live portals of this process."""
    return list(_PORTALS)


class Portal:
    """A background event loop thread that hosts a :class:`Runtime` for sync code.

    Started by :meth:`start` (the adapters call it in a process that serves, see
    :mod:`resonate_web._core.startup`) or else on first use, in the process that uses
    it: after a fork the child finds the parent's thread gone and starts its own.

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

    def __init__(self, runtime: Runtime, *, own_loop: bool = True) -> None:
        _PORTALS.add(self)
        self.runtime = runtime
        #: False when the framework owns the loop (FastAPI): see :meth:`attach`.
        self.own_loop = own_loop
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._refusal: str | None = None
        self._attached = False
        self._starts_in_children = False

    async def attach(self) -> None:
        """Host the runtime on the running loop instead of a thread of its own.

        An async framework with a loop of its own (FastAPI's lifespan) calls
        this: the clients then await the runtime directly on that loop, and sync
        code on other threads (a FastAPI ``def`` endpoint) hops onto it.
        """
        await self.runtime.start()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.current_thread()
        self._pid = os.getpid()
        self._attached = True

    async def detach(self) -> None:
        """Stop a runtime hosted by :meth:`attach`."""
        self._attached = False
        self._loop = self._thread = self._pid = None
        await self.runtime.stop()

    def check_server(self, *, multiprocess: bool) -> None:
        """Record what the serving process looks like; raise if it cannot work.

        ``multiprocess`` is the request's WSGI ``wsgi.multiprocess``.
        """
        if multiprocess and self._refusal is None and self._embedded:
            self._refusal = "this server runs the app in several processes"
            # A runtime started with the process serves nothing here: its
            # schedules must not go on firing, once in every process.
            self.close()
        self._check()

    def start(self) -> None:
        """Start the runtime now, in this process, instead of on first use. Idempotent.

        From then on its schedules fire and the backend is announced, before any
        request. In a process that then forks, the child is served as after any
        fork (see the class docstring); a server that forks before serving
        should call :meth:`start_in_forked_children` instead.
        """
        self._ensure()

    def start_in_forked_children(self) -> None:
        """Start the runtime in every process forked from this one, not in this one.

        For a server's master process that imports the app and forks the workers
        that serve it (gunicorn ``--preload``): the master never serves, so it
        must not fire schedules; each worker starts its runtime as it is forked
        (in a thread of its own, so the fork returns at once). Idempotent.
        """
        if self._starts_in_children:
            return
        self._starts_in_children = True
        ref = weakref.ref(self)

        def after_in_child() -> None:
            portal = ref()
            if portal is not None:
                thread = threading.Thread(
                    target=portal.start_logged, name="resonate-web-start", daemon=True
                )
                thread.start()

        os.register_at_fork(after_in_child=after_in_child)

    def start_logged(self) -> bool:
        """:meth:`start`, logging (not raising) why it failed; whether it started.

        A request then fails the same way, naming the cause as it does today.
        """
        try:
            self.start()
        except Exception as exc:
            logger.error(
                "resonate-web: the runtime did not start with the process (%s: %s); "
                "requests will say why",
                type(exc).__name__,
                exc,
            )
            return False
        return True

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
        if self._attached and self._loop is not None:
            return self._loop
        if not self.own_loop:
            raise RuntimeError(
                "the resonate-web runtime is not started: include the ResonateRouter in "
                "the app and run the app with its lifespan"
            )
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
                self.runtime.forget()
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

    async def acall[T](
        self,
        coro: Coroutine[Any, Any, T],
        timeout: float | None = None,  # noqa: ASYNC109 - spans the hop, not only the await
    ) -> T:
        """Await ``coro`` on the portal loop from any other loop (or the same one);
        ``TimeoutError`` after ``timeout`` seconds."""
        try:
            loop = self._ensure()
        except BaseException:
            coro.close()
            raise
        if timeout is None:
            if asyncio.get_running_loop() is loop:
                return await coro
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
        async with asyncio.timeout(timeout):
            if asyncio.get_running_loop() is loop:
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
        if self._attached:
            return
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
