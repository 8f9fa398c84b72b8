"""One virtual clock for the resonate-web runtimes of a test (see :mod:`resonate_web.testing`).

While a :class:`VirtualClock` is active (the ``resonate_clock`` fixture), every
runtime that starts runs on it: the SDK client computes deadlines from it and
waits out retries' backoff on it, the embedded backend times promises out by it,
and resonate-web's schedule ticker, pruning and failure records read it. Time
moves only when the test moves it, and never while user code runs: the clock
counts attempts in flight and steps running in threads, and waits for them.

Moving time stops at every deadline on the way (a durable timer, a promise's
timeout, a retry's backoff, a lease heartbeat, a schedule's tick), so jumping
three days fires each hourly tick at its own hour, not all of them at the end,
timed out.

Nothing here imports pytest; the fixture is :mod:`resonate_web.testing.plugin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from resonate.resonate import Resonate

    from resonate_web.settings import Settings

__all__ = [
    "DEFAULT_START",
    "Deadline",
    "StillPending",
    "VirtualClock",
    "activate",
    "active",
    "attempt",
    "deactivate",
    "user_code",
]

#: Where a virtual clock starts unless told otherwise.
DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)
#: Real seconds :meth:`VirtualClock.settle` waits for running code before it gives up.
SETTLE_LIMIT = 60.0
#: Consecutive quiet checks (each after a few event-loop turns) that make "settled".
_QUIET_CHECKS = 3
_TURNS = 10

_ACTIVE: list[VirtualClock] = []


class Runtime(Protocol):
    """What the clock needs of a runtime it drives (``resonate_web._core.runtime``'s
    :class:`~resonate_web._core.runtime.Runtime` is one)."""

    settings: Settings
    #: The gateway serving it, for status documents (``None`` before one is built).
    gateway: Any

    @property
    def started(self) -> bool: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def client(self) -> Resonate: ...


def active() -> VirtualClock | None:
    """The clock runtimes start on now, if a test activated one."""
    return _ACTIVE[-1] if _ACTIVE else None


def activate(clock: VirtualClock) -> None:
    _ACTIVE.append(clock)


def deactivate(clock: VirtualClock) -> None:
    if clock in _ACTIVE:
        _ACTIVE.remove(clock)


@contextlib.contextmanager
def attempt() -> Iterator[None]:
    """Around an attempt of a durable function: time stands still while it runs."""
    clock = active()
    if clock is None:
        yield
        return
    clock._count("in_flight", 1)
    try:
        yield
    finally:
        clock._count("in_flight", -1)


@contextlib.contextmanager
def user_code() -> Iterator[None]:
    """Around user code run in a worker thread: time stands still while it runs."""
    clock = active()
    if clock is None:
        yield
        return
    clock._count("threads", 1)
    try:
        yield
    finally:
        clock._count("threads", -1)


def _ms(when: datetime | str) -> int:
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return round(when.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _delta_ms(delta: timedelta | float) -> int:
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        raise ValueError(f"time moves forward only (asked to move {seconds} s)")
    return round(seconds * 1000)


@dataclass(frozen=True)
class Deadline:
    """Something due at a virtual time: what :meth:`VirtualClock.upcoming` lists."""

    at: datetime
    what: str


class StillPending(AssertionError):
    """An invocation is pending with nothing scheduled that could settle it (or past
    the limit): it waits on someone, and skipping time will not help."""


@dataclass(order=True)
class _Timer:
    at: int
    seq: int
    what: str = field(compare=False)
    loop: asyncio.AbstractEventLoop = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)
    fired: bool = field(default=False, compare=False)


class Waker:
    """A background loop's wait (the backend's deadline sweep, the schedule ticker):
    until a time (if any) or until the clock pokes it, which it does each time it
    moves. It counts as running from its wake until it waits again."""

    def __init__(self, clock: VirtualClock, what: str) -> None:
        self.clock = clock
        self.what = what
        self._future: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = True

    @property
    def busy(self) -> bool:
        return self._running or (self._future is not None and self._future.done())

    async def wait(self, at: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._future, self._loop, self._running = future, loop, False
        timer = None if at is None else self.clock._add(at, self.what, loop, future)
        try:
            await future
        finally:
            self._running = True
            if timer is not None:
                if timer.fired:
                    self.clock._count("waking", -1)
                self.clock._drop(timer)

    async def sleep(self, secs: float) -> None:
        """A :data:`resonate.timing.Sleeper` that waits for the next poke only."""
        await self.wait()

    def poke(self) -> None:
        future, loop = self._future, self._loop
        if future is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class VirtualClock:
    """A clock that moves only when told, shared by every runtime started while active.

    Made and activated by the ``resonate_clock`` fixture; usable directly with
    :func:`activate` and :func:`deactivate`.
    """

    def __init__(self, start: datetime | str = DEFAULT_START) -> None:
        self._now = _ms(start)
        self._lock = threading.RLock()
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._runtimes: list[Runtime] = []
        self._wakers: list[Waker] = []
        self.in_flight = 0
        self.threads = 0
        self.parked = 0
        self.waking = 0
        self.progress = 0

    # ── reading it ──────────────────────────────────────────────────────────

    def now_ms(self) -> int:
        """The virtual time in unix milliseconds (a :data:`resonate.timing.Clock`)."""
        return self._now

    @property
    def now(self) -> datetime:
        """The virtual time, an aware UTC datetime."""
        return _at(self._now)

    def upcoming(self) -> list[Deadline]:
        """What is due next, soonest first: timers, promise timeouts, backoffs, ticks."""
        found = [(t.at, t.what) for t in self._pending_timers()]
        for runtime in list(self._runtimes):
            found.extend((at, what) for at, what, _, _ in _backend_deadlines(runtime))
        return [Deadline(_at(at), what) for at, what in sorted(found)]

    # ── the runtimes' side ─────────────────────────────────────────────────

    def attach(self, runtime: Runtime) -> None:
        with self._lock:
            self._runtimes.append(runtime)

    def detach(self, runtime: Runtime) -> None:
        with self._lock:
            if runtime in self._runtimes:
                self._runtimes.remove(runtime)

    def waker(self, what: str) -> Waker:
        waker = Waker(self, what)
        with self._lock:
            self._wakers.append(waker)
        return waker

    def forget_waker(self, waker: Waker) -> None:
        with self._lock:
            if waker in self._wakers:
                self._wakers.remove(waker)

    async def sleep(self, secs: float, what: str = "a sleep", *, parked: bool = False) -> None:
        """Wait ``secs`` virtual seconds. ``parked``: a retry's backoff, inside an
        attempt that counts as in flight, which does not hold time still."""
        if secs <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        timer = self._add(self._now + max(round(secs * 1000), 0), what, loop, future)
        if parked:
            self._count("parked", 1)
        try:
            await future
        finally:
            if parked:
                self._count("parked", -1)
            if timer.fired:
                self._count("waking", -1)
            self._drop(timer)

    async def backoff(self, secs: float) -> None:
        """The SDK client's sleeper: a retry's backoff."""
        await self.sleep(secs, "retry backoff", parked=True)

    async def heartbeat(self, secs: float) -> None:
        """The lease keeper's sleeper."""
        await self.sleep(secs, "lease heartbeat")

    def _count(self, name: str, by: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)
            self.progress += 1

    def _add(
        self, at: int, what: str, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]
    ) -> _Timer:
        timer = _Timer(at, next(self._seq), what, loop, future)
        with self._lock:
            heapq.heappush(self._timers, timer)
        return timer

    def _drop(self, timer: _Timer) -> None:
        with self._lock:
            if timer in self._timers:
                self._timers.remove(timer)
                heapq.heapify(self._timers)

    def _pending_timers(self) -> list[_Timer]:
        with self._lock:
            return sorted(t for t in self._timers if not t.future.done() and not t.fired)

    # ── moving it ──────────────────────────────────────────────────────────

    def advance(self, delta: timedelta | float) -> None:
        """Move time forward by ``delta`` (a timedelta or seconds), stopping at every
        deadline on the way; returns when all that fell due has run and nothing runs."""
        _run_blocking(self.aadvance(delta), "advance")

    async def aadvance(self, delta: timedelta | float) -> None:
        """:meth:`advance` for async tests."""
        target = self._now + _delta_ms(delta)
        while True:
            await self.asettle()
            due = self._next_due()
            if due is None or due > target:
                break
            self._move_to(due)
        self._move_to(target)
        await self.asettle()

    def settle(self) -> None:
        """Wait, without moving time, until nothing runs (all that is due has run)."""
        _run_blocking(self.asettle(), "settle")

    async def asettle(self) -> None:
        """:meth:`settle` for async tests."""
        for waker in list(self._wakers):
            waker.poke()
        start = time.monotonic()
        quiet, last = 0, -1
        while quiet < _QUIET_CHECKS:
            busy, progress = await self._check()
            if busy is None and progress == last:
                quiet += 1
            else:
                quiet = 0
            last = progress
            if busy is not None and time.monotonic() - start > SETTLE_LIMIT:
                raise TimeoutError(
                    f"resonate_clock: still running after {SETTLE_LIMIT:.0f} s of real time "
                    f"({busy}); time does not move while user code runs"
                )
            if busy is not None:
                await asyncio.sleep(0.001)

    def run_until_settled(
        self, id: str, limit: timedelta | float = timedelta(days=365)
    ) -> dict[str, Any]:
        """Skip time until invocation ``id`` settles; its status document.

        Raises :class:`StillPending` at once when it is pending and nothing is
        scheduled (it awaits a promise only someone can settle), naming what it
        awaits, or when settling it would take longer than ``limit``."""
        return _run_blocking(self.arun_until_settled(id, limit), "run_until_settled")

    async def arun_until_settled(
        self, id: str, limit: timedelta | float = timedelta(days=365)
    ) -> dict[str, Any]:
        """:meth:`run_until_settled` for async tests."""
        until = self._now + _delta_ms(limit)
        while True:
            await self.asettle()
            doc = await self._status(id)
            if doc.get("status") != "pending":
                return doc
            due = self._next_due_for(id)
            if due is None or due > until:
                awaiting = ", ".join(doc.get("awaiting") or []) or "nothing it names"
                why = (
                    "nothing is scheduled that could move it on but timeouts (its own, "
                    "or of promises someone settles): advance() to reach those"
                    if due is None
                    else f"what it waits for next ({_at(due).isoformat()}) is past the limit"
                )
                raise StillPending(
                    f"invocation {id} is still pending at {self.now.isoformat()}: {why}; "
                    f"it awaits {awaiting}"
                )
            await self.aadvance(timedelta(milliseconds=max(due - self._now, 0)))

    def _next_due_for(self, id: str) -> int | None:
        """The next deadline that moves invocation ``id`` on: a durable timer of its,
        or a retry's backoff. Not a timeout (its own, or of a promise someone
        settles): skipping to one is a test's decision (``advance``)."""
        times = [t.at for t in self._pending_timers() if t.what == "retry backoff"]
        for runtime in list(self._runtimes):
            times.extend(
                at
                for at, what, origin, external in _backend_deadlines(runtime)
                if origin == id and what != _timeout_of(id) and not external
            )
        return min(times, default=None)

    def _next_due(self) -> int | None:
        times = [t.at for t in self._pending_timers()]
        for runtime in list(self._runtimes):
            times.extend(at for at, _, _, _ in _backend_deadlines(runtime))
        return min(times, default=None)

    def _move_to(self, at: int) -> None:
        with self._lock:
            self._now = max(self._now, at)
            due: list[_Timer] = []
            while self._timers and self._timers[0].at <= self._now:
                due.append(heapq.heappop(self._timers))
            for timer in due:
                if timer.future.done() or timer.loop.is_closed():
                    continue
                timer.fired = True
                self.waking += 1
                self.progress += 1
                timer.loop.call_soon_threadsafe(_wake, timer.future)

    async def _check(self) -> tuple[str | None, int]:
        """What runs now, if anything (None: nothing), and the progress counter."""
        for runtime in list(self._runtimes):
            loop = _loop_of(runtime)
            if loop is None:
                continue
            busy = await _on(loop, _runtime_busy(runtime))
            if busy is not None:
                return busy, self.progress
        with self._lock:
            if self.threads:
                return f"{self.threads} step(s) in threads", self.progress
            if self.in_flight > self.parked:
                return f"{self.in_flight - self.parked} attempt(s) in flight", self.progress
            if self.waking:
                return "a sleep that ended", self.progress
        for waker in list(self._wakers):
            if waker.busy:
                return waker.what, self.progress
        return None, self.progress

    async def _status(self, id: str) -> dict[str, Any]:
        from resonate_web.problems import Problem

        problem: Problem | None = None
        for runtime in list(self._runtimes):
            gateway = runtime.gateway
            loop = _loop_of(runtime)
            if gateway is None or loop is None:
                continue
            try:
                prefix = runtime.settings.prefix
                doc: dict[str, Any] = await _on(loop, gateway.status_document(id, prefix))
            except Problem as exc:
                problem = exc
                continue
            return doc
        if problem is not None:
            raise problem
        raise LookupError(
            f"resonate_clock: no runtime started on this clock holds {id!r}. An app "
            "started before the clock (a fixture that starts it, listed before "
            "resonate_clock or not asking for it) runs on real time: have that fixture "
            "ask for resonate_clock"
        )


def _loop_of(runtime: Runtime) -> asyncio.AbstractEventLoop | None:
    if not runtime.started:
        return None
    try:
        loop = runtime.loop
    except RuntimeError:
        return None
    return None if loop.is_closed() else loop


async def _runtime_busy(runtime: Runtime) -> str | None:
    from resonate_web._core import sdk as _sdk

    for _ in range(_TURNS):
        await asyncio.sleep(0)
    if not runtime.started:
        return None
    sending, dispatching = _sdk.embedded_activity(runtime.client)
    if sending:
        return "a request to the backend"
    if dispatching:
        return "a message from the backend"
    return None


def _timeout_of(id: str) -> str:
    return f"timeout of promise {id}"


def _backend_deadlines(runtime: Runtime) -> list[tuple[int, str, str, bool]]:
    from resonate_web._core import sdk as _sdk

    if not runtime.started:
        return []
    deadlines = _sdk.embedded_deadlines(runtime.client)
    return [(at, _timeout_of(id), origin, ext) for at, id, origin, ext in deadlines]


async def _on[T](loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on ``loop``, from that loop or another."""
    if asyncio.get_running_loop() is loop:
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


def _run_blocking[T](coro: Coroutine[Any, Any, T], name: str) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError(
            f"resonate_clock.{name}() blocks: in an async test, await resonate_clock.a{name}()"
        )
    return asyncio.run(coro)
