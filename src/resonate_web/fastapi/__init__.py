"""FastAPI adapter: ``app.include_router(ResonateRouter(functions))``.

The router carries its own lifespan (merged into the app's by
``include_router``), which starts the runtime on the app's event loop and stops
it on shutdown. :data:`ResonateDep` hands custom handlers the started client.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from enum import Enum
from typing import Annotated, Any

try:
    from fastapi import APIRouter, Depends, FastAPI, Path, Query
    from fastapi import Request as FastAPIRequest
    from fastapi.responses import Response
    from fastapi.sse import EventSourceResponse
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "resonate_web.fastapi needs FastAPI: pip install 'resonate-web[fastapi]'"
    ) from exc

from resonate.resonate import Resonate

from resonate_web.exposure import Functions
from resonate_web.gateway import ROUTES, Gateway, Request, Route, mount_prefix, read_capped
from resonate_web.models import FunctionList, Health, ProblemDetails, StartBody, StatusDocument
from resonate_web.problems import PROBLEM_CONTENT_TYPE
from resonate_web.runtime import Runtime
from resonate_web.settings import Settings

__all__ = ["ResonateDep", "ResonateRouter", "get_resonate"]

_STATE_KEY = "resonate_web_runtime"
_ROUTES = {r.name: r for r in ROUTES}

# Parameters are declared as strings: the gateway parses them itself, so a bad
# value gets the contract's problem (400 invalid-wait), not FastAPI's own 422.
Wait = Annotated[
    str | None,
    Query(description="Seconds (a number >= 0) to hold the response until the invocation settles"),
]
Name = Annotated[str, Path(description="An exposed function's name")]
Id = Annotated[str, Path(description="Invocation id")]
QueryId = Annotated[str | None, Query(description="Invocation id")]


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"model": ProblemDetails, "content": {PROBLEM_CONTENT_TYPE: {}}} for code in codes
    }


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
        **settings_kwargs: Any,
    ) -> None:
        self.settings = settings or Settings.load(**settings_kwargs)
        self.runtime = Runtime(self.settings, functions)
        self.gateway = Gateway(self.runtime)
        super().__init__(
            prefix=self.settings.prefix if prefix is None else prefix,
            tags=list(tags) if tags is not None else ["resonate"],
            lifespan=self._lifespan,
        )
        self._add_routes()

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await self.runtime.start()
        try:
            yield {_STATE_KEY: self.runtime}
        finally:
            await self.runtime.stop()

    async def _serve(
        self, name: str, request: FastAPIRequest, path_params: dict[str, str]
    ) -> Response:
        route: Route = _ROUTES[name]
        body = b""
        if route.method == "POST":
            body = await read_capped(request.stream(), self.settings.body_limit)
        neutral = Request(
            method=request.method,
            path_params=path_params,
            query=dict(request.query_params.items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            prefix=mount_prefix(_external_path(request), route, path_params),
            principal=request.scope.get("user"),
        )
        response = await self.gateway.handle(name, neutral, request.url.path)
        if response.stream is not None:
            return EventSourceResponse(response.stream, headers=response.headers)
        return Response(
            response.content(),
            status_code=response.status,
            headers=response.headers,
            media_type=response.media_type,
        )

    def _add_routes(self) -> None:
        async def list_functions(request: FastAPIRequest) -> Response:
            return await self._serve("list_functions", request, {})

        async def start(
            request: FastAPIRequest,
            name: Name,
            wait: Wait = None,
            id: QueryId = None,
        ) -> Response:
            return await self._serve("start", request, {"name": name})

        async def status(request: FastAPIRequest, id: Id, wait: Wait = None) -> Response:
            return await self._serve("status", request, {"id": id})

        async def events(request: FastAPIRequest, id: Id) -> Response:
            return await self._serve("events", request, {"id": id})

        async def health(request: FastAPIRequest) -> Response:
            return await self._serve("health", request, {})

        endpoints: dict[str, Callable[..., Awaitable[Response]]] = {
            "list_functions": list_functions,
            "start": start,
            "status": status,
            "events": events,
            "health": health,
        }
        for route in ROUTES:
            self.add_api_route(
                route.path,
                endpoints[route.name],
                methods=[route.method],
                summary=route.summary,
                name=f"resonate_{route.name}",
                **_OPENAPI[route.name],
            )


_OPENAPI: dict[str, dict[str, Any]] = {
    "list_functions": {"response_model": FunctionList, "responses": _problems(503)},
    "start": {
        "status_code": 202,
        "response_model": StatusDocument,
        "response_model_exclude_none": True,
        "responses": {
            200: {"model": StatusDocument, "description": "Settled"},
            **_problems(400, 404, 413, 415, 422, 503),
        },
        "openapi_extra": {
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": StartBody.model_json_schema()}},
            },
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Invocation id; wins over the id query parameter",
                }
            ],
        },
    },
    "status": {
        "response_model": StatusDocument,
        "response_model_exclude_none": True,
        "responses": _problems(400, 404, 503),
    },
    "events": {
        "response_class": Response,
        "responses": {
            200: {
                "description": "`event: status` frames with the status document",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **_problems(400, 404, 503),
        },
    },
    "health": {"response_model": Health, "responses": _problems(503)},
}


def _external_path(request: FastAPIRequest) -> str:
    """The path as the client sent it: ASGI servers may or may not include root_path."""
    root: str = request.scope.get("root_path", "")
    path: str = request.scope["path"]
    return path if path.startswith(root) else root + path


def get_resonate(request: FastAPIRequest) -> Resonate:
    """Dependency: the started Resonate client of the app's ResonateRouter."""
    runtime: Runtime | None = getattr(request.state, _STATE_KEY, None)
    if runtime is None:
        raise RuntimeError(
            "no resonate-web runtime in this app: app.include_router(ResonateRouter(...)) "
            "and run the app with its lifespan"
        )
    return runtime.client


ResonateDep = Annotated[Resonate, Depends(get_resonate)]
