"""OpenTelemetry, when it is installed (``pip install 'resonate-web[otel]'``).

- a span per route (``resonate GET /invocations/{id}``) with the invocation id
  and function as attributes (``resonate.invocation.id``, ``resonate.function``);
- the request's trace carried with the invocation: a W3C ``traceparent`` rides
  in the root promise's tags (:data:`TRACEPARENT_TAG`, added at the network
  edge like the other tags, see :mod:`resonate_web._core.search`), and the process
  that runs the function, a worker elsewhere or this one, starts the function's
  span (``resonate.function add``) with it as the parent: one trace from the
  HTTP request to the function;
- counters ``resonate_web.invocations.started`` (by function) and
  ``resonate_web.invocations.settled`` (by function and status), and the gauge
  ``resonate_web.waiting`` (requests waiting for an invocation to settle);
- :class:`InvocationFilter`, which gives log records the invocation they belong
  to (``%(invocation_id)s``), in the request and in the function.

Without OpenTelemetry installed every function here does nothing. With it
installed but no tracer provider configured, the API's no-op tracer is used and
the worker does not read the root promise's tags.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Observation

from resonate_web._core.search import TRACEPARENT_TAG

__all__ = ["TRACEPARENT_TAG", "InvocationFilter", "active", "current_invocation"]

_SCOPE = "resonate_web"

_INVOCATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "resonate_web_invocation", default=None
)


class _Waiting(Protocol):
    @property
    def waiting(self) -> int: ...


_gateways: weakref.WeakSet[Any] = weakref.WeakSet()
_instruments: dict[str, Any] = {}


@functools.cache
@functools.cache
def installed() -> bool:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _named_in_environment(variable: str) -> bool:
    """Whether the environment names a provider for OpenTelemetry to load: read once
    (it is read when the process starts; a lookup that misses costs a KeyError),
    and only until an application sets a provider itself."""
    return variable in os.environ


def active() -> bool:
    """Whether an application configured a tracer provider (else spans go nowhere,
    and none is started: a span of the no-op provider still costs its context)."""
    if not installed():
        return False
    from opentelemetry import trace

    # The global set by set_tracer_provider (once); get_tracer_provider() reads the
    # environment on every call until one is set.
    provider = getattr(trace, "_TRACER_PROVIDER", None)
    if provider is None:
        if not _named_in_environment("OTEL_PYTHON_TRACER_PROVIDER"):
            return False
        provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def counting() -> bool:
    """Whether an application configured a meter provider (else counts go nowhere)."""
    if not installed():
        return False
    from opentelemetry import metrics
    from opentelemetry.metrics import NoOpMeterProvider, _internal

    # As for tracing: the global set by set_meter_provider, without the environment
    # lookup get_meter_provider() makes on every call until one is set.
    provider = getattr(_internal, "_METER_PROVIDER", None)
    if provider is None:
        if not _named_in_environment("OTEL_PYTHON_METER_PROVIDER"):
            return False
        provider = metrics.get_meter_provider()
    return not isinstance(provider, NoOpMeterProvider) and type(provider).__name__ != (
        "_ProxyMeterProvider"
    )


# ── log correlation ──────────────────────────────────────────────────────────


class InvocationFilter(logging.Filter):
    """Sets ``record.invocation_id`` (``"-"`` outside an invocation): add it to a
    handler and use ``%(invocation_id)s`` in its format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.invocation_id = _INVOCATION.get() or "-"
        return True


def current_invocation() -> str | None:
    """The invocation the running request or function belongs to, if any."""
    return _INVOCATION.get()


class invocation:
    """Log records within belong to invocation ``id``.

    A class rather than a generator: every request enters one."""

    __slots__ = ("_id", "_token")

    def __init__(self, id: str | None) -> None:
        self._id = id

    def __enter__(self) -> None:
        self._token = _INVOCATION.set(self._id)

    def __exit__(self, *exc: object) -> None:
        _INVOCATION.reset(self._token)


# ── spans ────────────────────────────────────────────────────────────────────


@contextlib.contextmanager
def route_span(
    route: str, method: str, path: str, *, id: str | None, function: str | None
) -> Iterator[Any]:
    """The span of one route (``None`` without a configured tracer provider)."""
    if not active():
        with invocation(id):
            yield None
        return
    from opentelemetry import trace

    attributes = {"resonate.route": route, "http.request.method": method}
    if id is not None:
        attributes["resonate.invocation.id"] = id
    if function is not None:
        attributes["resonate.function"] = function
    tracer = trace.get_tracer(_SCOPE)
    with (
        tracer.start_as_current_span(f"resonate {method} {path}", attributes=attributes) as span,
        invocation(id),
    ):
        yield span


def annotate(*, id: str | None = None, function: str | None = None) -> None:
    """Name the invocation (and function) the current route span is about."""
    if id is not None:
        _INVOCATION.set(id)
    if not active():
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if id is not None:
        span.set_attribute("resonate.invocation.id", id)
    if function is not None:
        span.set_attribute("resonate.function", function)


def finish(span: Any, status: int) -> None:
    """Record the response status on a route span; a 5xx marks it as an error."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def traceparent() -> str | None:
    """The current span's W3C ``traceparent``, if there is a recording span."""
    if not active():
        return None
    from opentelemetry import propagate, trace

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def function_span(
    name: str, id: str, origin: str, attempt: int, parent: str | None
) -> Iterator[None]:
    """The span of one attempt of function ``name`` in invocation ``id``, a child of
    the ``traceparent`` ``parent`` (the request that started the invocation)."""
    with invocation(id):
        if not active():
            yield
            return
        from opentelemetry import propagate, trace

        context = propagate.extract({"traceparent": parent}) if parent else None
        attributes: dict[str, Any] = {
            "resonate.function": name,
            "resonate.invocation.id": id,
            "resonate.attempt": attempt,
        }
        if origin != id:
            attributes["resonate.origin.id"] = origin
        tracer = trace.get_tracer(_SCOPE)
        with tracer.start_as_current_span(
            f"resonate.function {name}",
            context=context,
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        ):
            yield


# ── metrics ──────────────────────────────────────────────────────────────────


def _instrument(name: str) -> Any:
    if name not in _instruments:
        from opentelemetry import metrics

        meter = metrics.get_meter(_SCOPE)
        _instruments["started"] = meter.create_counter(
            "resonate_web.invocations.started", description="Invocations started"
        )
        _instruments["settled"] = meter.create_counter(
            "resonate_web.invocations.settled", description="Invocations settled, by status"
        )
        _instruments["waiting"] = meter.create_observable_gauge(
            "resonate_web.waiting",
            callbacks=[_observe_waiting],
            description="Requests waiting for an invocation to settle (long-polls, streams)",
        )
    return _instruments[name]


def _observe_waiting(options: CallbackOptions) -> list[Observation]:
    from opentelemetry.metrics import Observation

    return [Observation(sum(g.waiting for g in list(_gateways)))]


def watch_waiting(gateway: _Waiting) -> None:
    """Report ``gateway.waiting`` in the ``resonate_web.waiting`` gauge."""
    if installed():
        _gateways.add(gateway)
        _instrument("waiting")


def count_started(function: str) -> None:
    if counting():
        _instrument("started").add(1, {"resonate.function": function})


def count_settled(function: str, status: str) -> None:
    if counting():
        _instrument("settled").add(1, {"resonate.function": function, "resonate.status": status})
