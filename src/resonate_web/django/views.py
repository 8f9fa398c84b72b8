"""The contract's routes as Django views: a sync and an async view per route.

Each route resolves to the view that matches the handler serving the request
(:class:`ModalPattern`): a WSGI handler resolves in a thread with no event loop
and gets the sync view, which waits on the runtime's portal; an ASGI handler
resolves on its event loop and gets the async view, which awaits the same hop.
Django could run either view under either handler, but only through an extra
hop of its own (``async_to_sync`` starts an event loop per request;
``sync_to_async`` parks a thread per request, for the whole of a long-poll).
Event streams follow the same split: a sync iterator under WSGI, an async one
under ASGI, so neither handler buffers the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import (  # type: ignore[import-untyped]
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)
from django.middleware.csrf import CsrfViewMiddleware  # type: ignore[import-untyped]
from django.urls import URLPattern, path  # type: ignore[import-untyped]

from resonate_web._adapter import (
    CHUNK,
    async_stream,
    neutral_request,
    read_capped_sync,
    serve_async,
    serve_sync,
    sync_stream,
)
from resonate_web._gateway.contract import Request, Response, problem_response
from resonate_web._gateway.router import ROUTES, Route, allowed_methods
from resonate_web.django.conf import State, state
from resonate_web.problems import Problem


class _CsrfCheck(CsrfViewMiddleware):  # type: ignore[misc]
    """Django's own CSRF check, reporting the reason instead of rendering a page."""

    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason


def csrf_failure(request: HttpRequest) -> str | None:
    """Why Django's CSRF check refuses this POST, or ``None``.

    The routes are exempt from the CSRF middleware so that API clients need no
    token; a request that carries cookies (what a browser sends along, and what
    session authentication reads) is checked here exactly as the middleware
    would check it.
    """
    if not request.COOKIES:
        return None
    check = _CsrfCheck(lambda request: None)
    check.process_request(request)
    reason: str | None = check.process_view(request, None, (), {})
    return reason


def _csrf_problem(reason: str, instance: str) -> Response:
    return problem_response(
        Problem(
            "forbidden",
            f"CSRF verification failed: {reason} A request with cookies must carry "
            "Django's CSRF token (the X-CSRFToken header)",
        ),
        instance,
    )


def _read_body(request: HttpRequest, st: State) -> bytes:
    return read_capped_sync(iter(lambda: request.read(CHUNK), b""), st.settings.body_limit)


def _neutral(request: HttpRequest, route: Route, params: dict[str, str], body: bytes) -> Request:
    return neutral_request(
        route,
        method=request.method,
        path=request.path,
        path_params=params,
        query={k: v[0] for k, v in request.GET.lists() if v},
        tag_filters=request.GET.getlist("tag"),
        headers=request.headers.items(),
        body=body,
        user=getattr(request, "user", None),
    )


def _multiprocess(request: HttpRequest) -> bool:
    # Django's test client says ``wsgi.multiprocess`` although it serves in the
    # test's own process; only its requests carry ``_dont_enforce_csrf_checks``.
    if hasattr(request, "_dont_enforce_csrf_checks"):
        return False
    return bool(request.META.get("wsgi.multiprocess", False))


def _django_response(response: Response, stream: Any = None) -> HttpResponse:
    out: HttpResponse
    if stream is None:
        out = HttpResponse(
            response.content(), status=response.status, content_type=response.media_type
        )
    else:
        out = StreamingHttpResponse(
            stream, status=response.status, content_type=response.media_type
        )
    for name, value in response.headers.items():
        out[name] = value
    return out


#: Methods Django's CSRF check leaves alone.
_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _pick(routes: dict[str, Route], request: HttpRequest) -> Route | HttpResponseNotAllowed:
    """The route serving ``request``'s method on this path, or a 405."""
    route = routes.get(request.method)
    if route is None:
        return HttpResponseNotAllowed(allowed_methods(next(iter(routes.values())).path))
    return route


def sync_view(routes: dict[str, Route]) -> Callable[..., HttpResponse]:
    """One view for the routes of one path, by method (``GET``/``DELETE /schedules/{id}``)."""

    def view(request: HttpRequest, **params: str) -> HttpResponse:
        route = _pick(routes, request)
        if isinstance(route, HttpResponse):
            return route
        st = state()
        body = _read_body(request, st) if route.method == "POST" else b""
        if route.method not in _SAFE and (reason := csrf_failure(request)):
            return _django_response(_csrf_problem(reason, request.path))
        neutral = _neutral(request, route, params, body)
        response = serve_sync(st, route, neutral, request.path, multiprocess=_multiprocess(request))
        return _django_response(response, sync_stream(st, response))

    return _finish(view, routes)


def async_view(routes: dict[str, Route]) -> Callable[..., Any]:
    async def view(request: HttpRequest, **params: str) -> HttpResponse:
        route = _pick(routes, request)
        if isinstance(route, HttpResponse):
            return route
        st = state()
        body = _read_body(request, st) if route.method == "POST" else b""
        if route.method not in _SAFE and request.COOKIES:
            reason = await sync_to_async(csrf_failure)(request)
            if reason:
                return _django_response(_csrf_problem(reason, request.path))
        neutral = _neutral(request, route, params, body)
        response = await serve_async(st, route, neutral, request.path)
        return _django_response(response, async_stream(st, response))

    return _finish(view, routes)


def _finish[V: Callable[..., Any]](view: V, routes: dict[str, Route]) -> V:
    first = next(iter(routes.values()))
    view.__name__ = view.__qualname__ = f"resonate_{first.name}"
    view.__doc__ = "; ".join(route.summary for route in routes.values())
    # Exempt from the CSRF middleware: POST and DELETE routes run csrf_failure() themselves.
    view.csrf_exempt = True  # type: ignore[attr-defined]
    # A route never touches the database: no ATOMIC_REQUESTS transaction around a
    # long-poll (and Django refuses ATOMIC_REQUESTS around an async view).
    view._non_atomic_requests = _EVERY_DATABASE  # type: ignore[attr-defined]
    return view


class _EveryDatabase(frozenset[str]):
    def __contains__(self, alias: object) -> bool:
        return True


_EVERY_DATABASE = _EveryDatabase()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class ModalPattern(URLPattern):  # type: ignore[misc]
    """A URL pattern with a sync and an async view: resolves to the one that
    matches the calling handler (see the module documentation)."""

    def __init__(self, sync: URLPattern, asynchronous: URLPattern) -> None:
        super().__init__(sync.pattern, sync.callback, sync.default_args, sync.name)
        self.asynchronous = asynchronous

    def resolve(self, path: str) -> Any:
        # Django tries every pattern in turn: only the one that matches asks which
        # handler is calling.
        match = super().resolve(path)
        if match is None or not _on_event_loop():
            return match
        return self.asynchronous.resolve(path)


def route_path(route: Route) -> str:
    """``/functions/{name}`` as a Django route: ``functions/<str:name>``."""
    return route.path.lstrip("/").replace("{", "<str:").replace("}", ">")


def patterns() -> list[ModalPattern]:
    """A pattern per route, named after it. Routes sharing a path (``GET`` and
    ``DELETE /schedules/{id}``) share its views, which pick the route by method:
    the first pattern of a path resolves every method, and each name still
    reverses to the path."""
    by_path: dict[str, dict[str, Route]] = {}
    for route in ROUTES:
        by_path.setdefault(route.path, {})[route.method] = route
    return [
        ModalPattern(
            path(route_path(route), sync_view(by_path[route.path]), name=route.name),
            path(route_path(route), async_view(by_path[route.path]), name=route.name),
        )
        for route in ROUTES
    ]


class ProblemMiddleware:
    """A :class:`~resonate_web.Problem` raised in a view of yours (by the client: a bad
    id, an unknown function, a backend that is down) answers as problem+json, as the
    routes' own errors do, instead of a 500: add
    ``"resonate_web.django.ProblemMiddleware"`` to ``MIDDLEWARE``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[..., Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> Any:
        return await self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if not isinstance(exception, Problem):
            return None
        return _django_response(problem_response(exception, request.path))
