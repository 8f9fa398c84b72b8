"""Flow control: how many invocations of a function run at once, how often they
start, which collapse into one, and which go first.

Declared on :meth:`~resonate_web.Functions.expose` (and ``expose_remote``)::

    @functions.expose(concurrency=Concurrency(2, key="customer"))
    def export(ctx, customer: str, report: str): ...

and enforced where the function runs: before its body, an invocation takes its
place in line (:func:`gated`) in the state every process sharing the backend
sees (:mod:`resonate_web._core.flowtable`), and waits, pending, until it is
first in line and its limits allow it. The starts of a debounced function, and
of a rate limit that refuses rather than waits, are decided where they are made
(:func:`debounce`, :func:`admit`), in the gateway or the client starting them.
Settings (``RESONATE_LIMITS``, ``LIMITS``) override what the code declares, so
operators can throttle without a deploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

from resonate.context import Context
from resonate.resonate import Resonate

from resonate_web._core import sdk as _sdk
from resonate_web.problems import Problem
from resonate_web.settings import ConfigurationError

logger = logging.getLogger("resonate_web")

__all__ = [
    "PRIORITY_TAG",
    "Concurrency",
    "Debounce",
    "FlowRules",
    "RateLimit",
    "Withdrawn",
    "admit",
    "debounce",
    "forget_debounce",
    "gated",
    "queue",
    "waiting",
]

#: On a root invocation started with a priority: the priority (an integer).
PRIORITY_TAG = "resonate-web:priority"
#: What a ``key`` names: a parameter of the function, or a function of its bound
#: arguments (a dict by parameter name) returning the key's value.
Key = str | Callable[[dict[str, Any]], Any] | None
#: The reasons a pending invocation waits (``waiting_for`` in its status document).
WaitingFor = Literal["concurrency", "rate", "debounce"]
WAITING_FOR: tuple[WaitingFor, ...] = ("concurrency", "rate", "debounce")
#: The longest an invocation in line sleeps between two looks at the line.
_MAX_POLL = 1.0
_FIRST_POLL = 0.05


def _seconds(period: timedelta | float, what: str) -> float:
    seconds = period.total_seconds() if isinstance(period, timedelta) else float(period)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{what}: the period must be positive, got {period!r}")
    return seconds


def _limit(limit: int, what: str) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{what}: the limit must be a positive integer, got {limit!r}")


@dataclass(frozen=True)
class Concurrency:
    """At most ``limit`` invocations run at once, per value of ``key`` (``None``: one
    limit for all). The others wait, pending, first in first out (by priority first)."""

    limit: int
    key: Key = None

    def __post_init__(self) -> None:
        _limit(self.limit, "Concurrency")


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` invocations begin per ``period`` (seconds or a timedelta), per
    value of ``key``. The others wait for the window (``on_limit="wait"``), or their
    start is refused with 429 ``rate-limited`` and ``Retry-After`` (``"reject"``)."""

    limit: int
    period: timedelta | float
    key: Key = None
    on_limit: Literal["wait", "reject"] = "wait"

    def __post_init__(self) -> None:
        _limit(self.limit, "RateLimit")
        _seconds(self.period, "RateLimit")
        if self.on_limit not in ("wait", "reject"):
            raise ValueError(f"RateLimit: on_limit is 'wait' or 'reject', not {self.on_limit!r}")

    @property
    def period_ms(self) -> int:
        return max(int(_seconds(self.period, "RateLimit") * 1000), 1)


@dataclass(frozen=True)
class Debounce:
    """Starts with the same ``key`` within ``period`` of each other collapse into one
    invocation, which runs once, with the last start's arguments, ``period`` after
    the last start. Every start answers with the id of that invocation."""

    period: timedelta | float
    key: Key = None

    def __post_init__(self) -> None:
        _seconds(self.period, "Debounce")

    @property
    def period_ms(self) -> int:
        return max(int(_seconds(self.period, "Debounce") * 1000), 1)


@dataclass(frozen=True)
class FlowRules:
    """A function's flow control, as declared and as overridden by the settings."""

    concurrency: Concurrency | None = None
    rate: RateLimit | None = None
    debounce: Debounce | None = None

    def __bool__(self) -> bool:
        return bool(self.concurrency or self.rate or self.debounce)

    def check(self, name: str, signature: inspect.Signature | None) -> None:
        """Refuse a ``key`` naming no parameter of the function."""
        if signature is None:
            return
        for option in (self.concurrency, self.rate, self.debounce):
            key = getattr(option, "key", None)
            if isinstance(key, str) and key not in signature.parameters:
                raise ValueError(
                    f"{name!r}: {type(option).__name__}(key={key!r}) names no parameter of "
                    f"the function (it has {', '.join(signature.parameters) or 'none'})"
                )

    def overridden(self, override: Mapping[str, Any] | None) -> FlowRules:
        """These rules with a deployment's ``LIMITS`` entry applied: each limit named
        replaces the declared one's numbers (its key stays); ``null`` removes it."""
        if not override:
            return self
        rules = self
        if "concurrency" in override:
            value = override["concurrency"]
            key = self.concurrency.key if self.concurrency else None
            rules = replace(rules, concurrency=None if value is None else Concurrency(value, key))
        if "rate" in override:
            value = override["rate"]
            if value is None:
                rules = replace(rules, rate=None)
            else:
                old = self.rate
                rules = replace(
                    rules,
                    rate=RateLimit(
                        value["limit"],
                        value["period"],
                        old.key if old else None,
                        value.get("on_limit", old.on_limit if old else "wait"),
                    ),
                )
        if "debounce" in override:
            value = override["debounce"]
            key = self.debounce.key if self.debounce else None
            rules = replace(rules, debounce=None if value is None else Debounce(value, key))
        return rules


def _canonical(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _arguments(
    signature: inspect.Signature | None, args: list[Any], kwargs: dict[str, Any]
) -> dict[str, Any]:
    if signature is None:
        return {**{str(i): a for i, a in enumerate(args)}, **kwargs}
    bound = signature.bind_partial(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def lane(key: Key, arguments: dict[str, Any]) -> str:
    """The line an invocation with ``arguments`` stands in, for an option's ``key``."""
    if key is None:
        return "*"
    if callable(key):
        return "=" + _canonical(key(arguments))
    return "=" + _canonical(arguments.get(key))


# ── where the function runs ─────────────────────────────────────────────────


class _Nudges:
    """Wakes the invocations of a function waiting in this process when one here leaves
    its place (others, in other processes, see it at their next look)."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}

    async def sleep(self, fn: str, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(fn, set()).add(future)
        try:
            await asyncio.wait_for(future, seconds)
        except TimeoutError:
            pass
        finally:
            self._waiting.get(fn, set()).discard(future)

    def nudge(self, fn: str) -> None:
        for future in self._waiting.pop(fn, set()):
            if not future.done():
                future.set_result(None)


_NUDGES = _Nudges()


async def _call(client: Resonate, request: dict[str, Any]) -> dict[str, Any]:
    try:
        return await _sdk.flow_call(client, request)
    except _sdk.FlowUnsupported as exc:
        raise ConfigurationError(
            f"flow control (concurrency, rate, debounce) needs a backend that keeps its "
            f"state: the embedded one, `resonate-web dev`, or Postgres; this one answered: {exc}"
        ) from None


class Withdrawn(Exception):
    """The invocation was settled (canceled, timed out) while it waited for its turn:
    it leaves the line and its body never runs."""


#: How often an invocation in line checks that it is still pending (seconds).
_STILL_PENDING_EVERY = 2.0


async def _check_pending(client: Resonate, name: str, id: str, reason: str) -> None:
    record = await _sdk.read_promise(client, id)
    if record.state != "pending":
        with contextlib.suppress(Exception):
            await _call(client, {"op": "leave", "fn": name, "id": id})
        raise Withdrawn(f"{name} (invocation {id}) was settled while waiting for {reason}")


async def _take(client: Resonate, name: str, id: str) -> tuple[list[Any], dict[str, Any]] | None:
    """Wait out a debounced invocation's quiet period; the last start's arguments."""
    while True:
        answer = await _call(client, {"op": "take", "fn": name, "id": id})
        if "wait_ms" not in answer:
            if "args" not in answer:
                return None
            return list(answer["args"]), dict(answer["kwargs"])
        await asyncio.sleep(min(answer["wait_ms"] / 1000, _STILL_PENDING_EVERY))
        await _check_pending(client, name, id, "debounce")


async def _wait_in_line(client: Resonate, name: str, request: dict[str, Any]) -> None:
    poll = _FIRST_POLL
    told = False
    checked = time.monotonic()
    while True:
        answer = await _call(client, request)
        if answer.get("granted"):
            return
        if time.monotonic() - checked >= _STILL_PENDING_EVERY:
            # Canceled (or timed out) meanwhile: leave, or it would hold its place forever.
            await _check_pending(client, name, request["id"], str(answer.get("waiting_for")))
            checked = time.monotonic()
        if not told:
            logger.info(
                "resonate-web: %s (invocation %s) waits for %s",
                name,
                request["id"],
                answer.get("waiting_for"),
            )
            told = True
        retry_ms = answer.get("retry_ms")
        wait = min(retry_ms / 1000, _MAX_POLL * 5) if retry_ms else poll
        await _NUDGES.sleep(name, wait)
        poll = min(poll * 1.5, _MAX_POLL)


async def _keep(client: Resonate, name: str, id: str, lease_ms: int) -> None:
    """Renew an invocation's slot while its body runs (a slot whose holder died
    lapses with its lease, and the next in line runs)."""
    warned = False
    while True:
        await asyncio.sleep(lease_ms / 3000)
        try:
            answer = await _call(client, {"op": "renew", "fn": name, "id": id, "lease": lease_ms})
        except Exception as exc:  # the backend is away: the lease may lapse; try again
            logger.debug("resonate-web: renewing %s's slot failed: %s", id, exc)
            continue
        if not answer.get("held") and not warned:
            logger.warning(
                "resonate-web: %s (invocation %s) lost its concurrency slot while running "
                "(its renewals came later than its lease): another may run beside it",
                name,
                id,
            )
            warned = True


def gated(
    name: str,
    rules: FlowRules,
    signature: inspect.Signature | None,
    fn: Callable[..., Any],
    client: Resonate,
    lease: float,
) -> Callable[..., Any]:
    """``fn`` (async) waiting for its place in line before its body runs, holding it
    while it runs, and leaving it after each attempt."""
    lease_ms = max(int(lease * 1000), 1000)

    async def run(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        id = ctx.info.id
        record = await _sdk.read_promise(client, id)
        if rules.debounce is not None:
            last = await _take(client, name, id)
            if last is not None:
                args, kwargs = tuple(last[0]), last[1]
        request = _in_line(
            "enter",
            name,
            id,
            rules,
            signature,
            list(args),
            kwargs,
            lease_ms,
            priority=_priority(record.tags),
        )
        request["order"] = record.created_at
        keeper: asyncio.Task[None] | None = None
        done = False
        try:
            if "c" in request or "r" in request:
                await _wait_in_line(client, name, request)
            if "c" in request:
                keeper = asyncio.create_task(_keep(client, name, id, lease_ms))
            result = await fn(ctx, *args, **kwargs)
            done = True
            return result
        finally:
            if keeper is not None:
                keeper.cancel()
            with contextlib.suppress(Exception):
                await _call(client, {"op": "leave", "fn": name, "id": id, "done": done})
            _NUDGES.nudge(name)

    run.__name__ = getattr(fn, "__name__", name)
    run.__qualname__ = getattr(fn, "__qualname__", name)
    run.__doc__ = getattr(fn, "__doc__", None)
    return run


def _in_line(
    op: str,
    name: str,
    id: str,
    rules: FlowRules,
    signature: inspect.Signature | None,
    args: list[Any],
    kwargs: dict[str, Any],
    lease_ms: int,
    *,
    priority: int,
) -> dict[str, Any]:
    """The request that puts invocation ``id`` in its lines (concurrency, waiting rate)."""
    arguments = _arguments(signature, args, kwargs)
    request: dict[str, Any] = {
        "op": op,
        "fn": name,
        "id": id,
        "priority": priority,
        "lease": lease_ms,
    }
    if rules.concurrency is not None:
        request["c"] = {
            "lane": lane(rules.concurrency.key, arguments),
            "limit": rules.concurrency.limit,
        }
    if rules.rate is not None and rules.rate.on_limit == "wait":
        request["r"] = {
            "lane": lane(rules.rate.key, arguments),
            "limit": rules.rate.limit,
            "period": rules.rate.period_ms,
        }
    return request


async def queue(
    client: Resonate,
    name: str,
    rules: FlowRules,
    signature: inspect.Signature | None,
    id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    priority: int,
    lease: float,
) -> bool:
    """Put an invocation about to be created in line now, by the backend's clock, so
    its turn does not depend on when a worker first picks it up; whether this made
    its place (``False``: it needs none, or it already has one, or holds a slot).

    Before the create, never after it: an invocation that runs at once (inline, or
    on a quick worker) could otherwise have entered, run and left before its place
    was taken, and that place, never to be used, would hold up its lane until it
    lapsed. A caller whose create then fails, or turns out a replay, calls
    :func:`unqueue` when this returned ``True``."""
    if rules.concurrency is None and (rules.rate is None or rules.rate.on_limit != "wait"):
        return False
    lease_ms = max(int(lease * 1000), 1000)
    request = _in_line(
        "queue", name, id, rules, signature, args, kwargs, lease_ms, priority=priority
    )
    answer = await _call(client, request)
    return bool(answer.get("queued"))


async def unqueue(client: Resonate, name: str, id: str) -> None:
    """Give back the place :func:`queue` made for an invocation that was not created."""
    with contextlib.suppress(Exception):
        await _call(client, {"op": "leave", "fn": name, "id": id})


def _priority(tags: Mapping[str, str]) -> int:
    try:
        return int(tags.get(PRIORITY_TAG, "0"))
    except ValueError:
        return 0


# ── where the function is started ───────────────────────────────────────────


async def admit(
    client: Resonate,
    name: str,
    rules: FlowRules,
    signature: inspect.Signature | None,
    id: str,
    args: list[Any],
    kwargs: dict[str, Any],
) -> None:
    """Refuse a start whose rate window is full, where the function says so
    (``RateLimit(on_limit="reject")``): 429 ``rate-limited`` with ``Retry-After``."""
    rate = rules.rate
    if rate is None or rate.on_limit != "reject":
        return
    answer = await _call(
        client,
        {
            "op": "admit",
            "fn": name,
            "id": id,
            "lane": lane(rate.key, _arguments(signature, args, kwargs)),
            "limit": rate.limit,
            "period": rate.period_ms,
        },
    )
    if not answer.get("granted"):
        seconds = max(math.ceil(int(answer.get("retry_ms") or 1000) / 1000), 1)
        raise Problem(
            "rate-limited",
            f"{name} may start {rate.limit} time(s) per {rate.period_ms / 1000:g}s"
            f"{' for this ' + str(rate.key) if isinstance(rate.key, str) else ''}; "
            f"try again in {seconds}s",
            headers={"Retry-After": str(seconds)},
        )


async def debounce(
    client: Resonate,
    name: str,
    rules: FlowRules,
    signature: inspect.Signature | None,
    id: str,
    args: list[Any],
    kwargs: dict[str, Any],
) -> tuple[str, str | None]:
    """The id of the invocation a start of a debounced function joins: ``(id, lane)``
    with ``id`` the start's own when it opens a new one (the caller creates it, and
    :func:`forget_debounce` if that fails), else the open one's and ``lane`` None."""
    option = rules.debounce
    if option is None:
        return id, None
    where = lane(option.key, _arguments(signature, args, kwargs))
    answer = await _call(
        client,
        {
            "op": "debounce",
            "fn": name,
            "lane": where,
            "id": id,
            "args": args,
            "kwargs": kwargs,
            "period": option.period_ms,
        },
    )
    return str(answer["id"]), where if answer.get("new") else None


async def forget_debounce(client: Resonate, name: str, lane_: str, id: str) -> None:
    with contextlib.suppress(Exception):
        await _call(client, {"op": "forget", "fn": name, "lane": lane_, "id": id})


async def waiting(
    client: Resonate, names: list[str], ids: list[str] | None = None
) -> tuple[dict[str, WaitingFor], dict[str, dict[str, int]]]:
    """What the invocations of ``names`` in line wait for (only ``ids``, if given), and
    per function, how many wait for each reason and how many run holding a slot."""
    if not names:
        return {}, {}
    request: dict[str, Any] = {"op": "waiting", "fns": sorted(set(names))}
    if ids is not None:
        request["ids"] = ids
    answer = await _call(client, request)
    found: dict[str, WaitingFor] = {}
    counts: dict[str, dict[str, int]] = {}
    for fn, state in answer.items():
        tally = counts.setdefault(fn, dict.fromkeys(WAITING_FOR, 0))
        tally["running"] = int(state.get("running", 0))
        for entry in state.get("waiting", []):
            reason = entry["waiting_for"]
            if reason in WAITING_FOR:
                found.setdefault(entry["id"], reason)
                tally[reason] += 1
    return found, counts
