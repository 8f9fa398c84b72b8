"""FastAPI adapter: ``app.include_router(ResonateRouter(functions))``.

The router carries its own lifespan (merged into the app's by
``include_router``), which starts the runtime on the app's event loop, adds
the routes' operations to the app's OpenAPI document (one per exposed
function) and stops the runtime on shutdown. :data:`ResonateDep` hands
``async def`` handlers the client (:class:`~resonate_web.AsyncClient`),
:data:`SyncResonateDep` hands ``def`` handlers the sync one.
"""

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from enum import Enum
from typing import Annotated, Any

from starlette.types import Receive, Scope, Send

try:
    from fastapi import APIRouter, Depends, FastAPI, HTTPException, params
    from fastapi import Request as FastAPIRequest
    from fastapi.responses import PlainTextResponse, Response
    from fastapi.routing import APIRoute
    from fastapi.sse import EventSourceResponse
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "resonate_web.fastapi needs FastAPI >= 0.135: pip install 'resonate-web[fastapi]'"
    ) from exc

from resonate_web._adapter import async_stream, neutral_request, read_capped, serve_async
from resonate_web._core.exposure import Functions
from resonate_web._gateway import openapi
from resonate_web._gateway.auth import Authorize, Principal
from resonate_web._gateway.contract import problem_response
from resonate_web._gateway.openapi import problem_responses
from resonate_web._gateway.router import (
    PUBLIC_ROUTES,
    ROUTES,
    UI_ROUTES,
    Route,
    allowed_methods,
    route_named,
)
from resonate_web._inprocess import AsyncClient, Hosted, SyncClient, host
from resonate_web.problems import Problem, Slug
from resonate_web.settings import Settings

__all__ = [
    "ResonateDep",
    "ResonateRouter",
    "SyncResonateDep",
    "get_client",
    "get_sync_client",
    "problem_handler",
    "problem_responses",
]

_STATE_KEY = "resonate_web"
_OPERATION_IDS = {f"resonate_{route.name}" for route in ROUTES}
_ROUTE_NAMES = {route.name for route in ROUTES}


class ResonateRouter(APIRouter):
    """The contract's routes, with a lifespan that owns the Resonate runtime.

    ``settings`` defaults to ``Settings.load(**settings_kwargs)`` (environment
    ``RESONATE_*`` plus keyword overrides). ``prefix`` defaults to the settings'
    mount prefix (``/resonate``); ``include_router(router, prefix=..., tags=...)``
    adds to it as usual.
    """

    def __init__(
        self,
        functions: Functions,
        *,
        settings: Settings | None = None,
        prefix: str | None = None,
        tags: Sequence[str | Enum] | None = None,
        authorize: Authorize | params.Depends | None = None,
        **settings_kwargs: Any,
    ) -> None:
        self.settings = settings or Settings.load(**settings_kwargs)
        # A FastAPI dependency is resolved per request and its Principal handed on.
        self._principal = authorize if isinstance(authorize, params.Depends) else None
        hook = _from_dependency if self._principal is not None else authorize
        self.hosted: Hosted = host(
            self.settings,
            functions,
            own_loop=False,
            authorize=hook,  # type: ignore[arg-type]
        )
        self.runtime = self.hosted.runtime
        super().__init__(
            prefix=self.settings.prefix if prefix is None else prefix,
            tags=list(tags) if tags is not None else ["resonate"],
            lifespan=self._lifespan,
            route_class=_ProblemRoute,
        )
        for route in ROUTES:
            # FastAPI documents a placeholder operation (found by its id, wherever the
            # router is mounted) that the lifespan replaces with openapi.document's.
            # Parameters are parsed by the gateway, so FastAPI's 422 never applies.
            self.add_api_route(
                route.path,
                self._endpoint(route),
                methods=[route.method],
                name=f"resonate_{route.name}",
                operation_id=f"resonate_{route.name}",
                include_in_schema=route.name != "openapi" and route.name not in UI_ROUTES,
            )

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await self.hosted.portal.attach()
        self._document_in(app)
        try:
            yield {_STATE_KEY: self.hosted}
        finally:
            await self.hosted.portal.detach()

    def _document_in(self, app: FastAPI) -> None:
        """Replace the routes' placeholders in ``app.openapi()`` by the core's
        operations, built afresh on each call so functions exposed later show too."""
        original = app.openapi

        def document() -> dict[str, Any]:
            app.openapi_schema = None
            schema = original()
            paths: dict[str, Any] = schema.setdefault("paths", {})
            # Where the router is mounted, with which tags: as FastAPI composed them.
            prefix, tags = self.prefix, ["resonate"]
            for path, operations in list(paths.items()):
                ids = {op.get("operationId") for op in operations.values()}
                if "resonate_health" in ids:
                    prefix = path.removesuffix("/health")
                    tags = operations["get"].get("tags", tags)
                if ids & _OPERATION_IDS:
                    del paths[path]
            promises = self.settings.promises != "off"
            ours = openapi.document(self.runtime.exposed, prefix, tags=tags, promises=promises)
            paths.update(ours["paths"])
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                ours["components"]["schemas"]
            )
            return schema

        app.openapi = document  # type: ignore[method-assign]

    def _endpoint(self, route: Route) -> Callable[..., Any]:
        async def endpoint(request: FastAPIRequest, principal: Any = None) -> Response:
            body = b""
            if route.method == "POST":
                body = await read_capped(request.stream(), self.settings.body_limit)
            path = _external_path(request)
            neutral = neutral_request(
                route,
                method=request.method,
                path=path,
                path_params=request.path_params,
                query=dict(request.query_params.items()),
                tag_filters=request.query_params.getlist("tag"),
                headers=request.headers.items(),
                body=body,
                user=principal if self._principal is not None else request.scope.get("user"),
            )
            # Without a root path the URL's path is the scope's (no URL to build).
            instance = request.url.path if request.scope.get("root_path") else path
            response = await serve_async(self.hosted, route, neutral, instance)
            stream = async_stream(self.hosted, response)
            if stream is not None:
                return EventSourceResponse(stream, headers=response.headers)
            return Response(
                response.content(),
                status_code=response.status,
                headers=response.headers,
                media_type=response.media_type,
            )

        endpoint.__name__ = f"resonate_{route.name}"
        if self._principal is not None and route.name not in PUBLIC_ROUTES:
            signature = inspect.signature(endpoint)
            with_dependency = signature.parameters["principal"].replace(default=self._principal)
            endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=[signature.parameters["request"], with_dependency]
            )
        else:
            signature = inspect.signature(endpoint)
            endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=[signature.parameters["request"]]
            )
        return endpoint


def _from_dependency(request: Any, action: str, resource: str | None) -> Principal | None:
    """The hook when the router's ``authorize`` is a FastAPI dependency: its result."""
    user = request.user
    if user is not None and not isinstance(user, Principal):
        raise TypeError(f"the authorize dependency returns a Principal or None, not {user!r}")
    return user


_SLUGS: dict[int, Slug] = {401: "unauthorized", 403: "forbidden", 404: "not-found"}


class _ProblemRoute(APIRoute):
    """A route whose dependencies' errors (yours, or ``include_router(...,
    dependencies=[...])``'s) answer as problem+json too, and whose 405 lists every
    method served on its path (Starlette's lists only the first route's)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self.name.removeprefix("resonate_")
        if self.methods and scope["method"] not in self.methods and name in _ROUTE_NAMES:
            allow = ", ".join(allowed_methods(route_named(name).path, head=True))
            headers = {"Allow": allow}
            if "app" in scope:
                raise HTTPException(status_code=405, headers=headers)
            await PlainTextResponse("Method Not Allowed", 405, headers=headers)(
                scope, receive, send
            )
            return
        await super().handle(scope, receive, send)

    def get_route_handler(self) -> Callable[[FastAPIRequest], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: FastAPIRequest) -> Response:
            try:
                return await handler(request)
            except Problem as problem:
                return await problem_handler(request, problem)
            except HTTPException as exc:
                slug = _SLUGS.get(exc.status_code)
                if slug is None:
                    raise
                detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
                headers = dict(exc.headers or {})
                if slug == "unauthorized":
                    headers.setdefault("WWW-Authenticate", "Bearer")
                return await problem_handler(request, Problem(slug, detail, headers=headers))

        return guarded


def _external_path(request: FastAPIRequest) -> str:
    """The path as the client sent it: ASGI servers may or may not include root_path."""
    root: str = request.scope.get("root_path", "")
    path: str = request.scope["path"]
    return path if path.startswith(root) else root + path


async def problem_handler(request: FastAPIRequest, exc: Exception) -> Response:
    """Render a :class:`~resonate_web.Problem` raised in your own handler as problem+json:
    ``app.add_exception_handler(Problem, problem_handler)``."""
    if not isinstance(exc, Problem):  # pragma: no cover - registered for Problem only
        raise exc
    response = problem_response(exc, request.url.path)
    return Response(
        response.content(),
        status_code=response.status,
        headers=response.headers,
        media_type=response.media_type,
    )


def _hosted(request: FastAPIRequest) -> Hosted:
    hosted: Hosted | None = getattr(request.state, _STATE_KEY, None)
    if hosted is None:
        raise RuntimeError(
            "no resonate-web runtime in this app: app.include_router(ResonateRouter(...)) "
            "and run the app with its lifespan"
        )
    return hosted


def get_client(request: FastAPIRequest) -> AsyncClient:
    """Dependency: the client of the app's ResonateRouter, for ``async def`` handlers."""
    return _hosted(request).async_client


def get_sync_client(request: FastAPIRequest) -> SyncClient:
    """Dependency: the sync client, for ``def`` handlers (FastAPI runs them in a thread)."""
    return _hosted(request).client


ResonateDep = Annotated[AsyncClient, Depends(get_client)]
SyncResonateDep = Annotated[SyncClient, Depends(get_sync_client)]
