"""What the three adapters share: the neutral request, body reading, the hops.

An adapter's own module only reads its framework's request into
:func:`neutral_request`, calls :func:`serve_async` (FastAPI, async views) or
:func:`serve_sync` (WSGI views), and writes the :class:`~resonate_web._gateway.router.Response`
back, iterating a stream with :func:`sync_stream` or :func:`async_stream`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from resonate_web._gateway.contract import Request, Response, problem_response
from resonate_web._gateway.router import Route
from resonate_web._inprocess import Hosted
from resonate_web.problems import Problem
from resonate_web.settings import ConfigurationError

logger = logging.getLogger("resonate_web")

CHUNK = 64 * 1024


async def read_capped(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Read a request body, stopping once it exceeds ``limit`` (the gateway then says 413)."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            break
    return bytes(body)


#: How much of an oversized body a sync adapter reads and drops after the limit, so a
#: keep-alive connection stays usable for the client's next request.
DRAIN_LIMIT = 64 * 1024 * 1024


def read_capped_sync(chunks: Iterable[bytes], limit: int) -> bytes:
    """:func:`read_capped` for a sync framework's request stream.

    Past the limit the rest is read and dropped (up to :data:`DRAIN_LIMIT`): a WSGI
    app cannot close the connection, and a body left unread would be taken for the
    start of the client's next request on it.
    """
    body = bytearray()
    chunks = iter(chunks)
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            dropped = 0
            for rest in chunks:
                dropped += len(rest)
                if dropped > DRAIN_LIMIT:
                    break
            break
    return bytes(body)


def mount_prefix(path: str, route: Route, path_params: Mapping[str, str]) -> str:
    """The prefix a route is served under, from the request's full (decoded) path.

    ``/api/resonate/functions/add`` served by ``/functions/{name}`` with
    ``name=add`` is mounted at ``/api/resonate``; links then point back at it,
    however the app composed its routers, blueprints or url includes.
    """
    suffix = route.path.format_map(dict(path_params))
    return path[: -len(suffix)] if path.endswith(suffix) else ""


def neutral_request(
    route: Route,
    *,
    method: str,
    path: str,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    headers: Iterable[tuple[str, str]],
    body: bytes = b"",
    user: Any = None,
    tag_filters: Iterable[str] = (),
) -> Request:
    """The gateway's request: header names lower-cased, the mount prefix from ``path``."""
    return Request(
        method=method,
        path_params=dict(path_params),
        query=query,
        headers={k.lower(): v for k, v in headers},
        body=body,
        prefix=mount_prefix(path, route, path_params),
        user=user,
        tag_filters=tuple(tag_filters),
    )


def _refused(exc: ConfigurationError, instance: str) -> Response:
    logger.error("resonate-web: %s", exc)
    return problem_response(Problem("backend-unavailable", str(exc)), instance)


def serve_sync(
    hosted: Hosted, route: Route, request: Request, instance: str, *, multiprocess: bool = False
) -> Response:
    """Run ``route`` from sync (WSGI) code, through the portal (unless the gateway
    answers it at once, see :meth:`~resonate_web._gateway.router.Gateway.quick`).

    ``multiprocess`` is the request's ``wsgi.multiprocess``. A deployment the
    runtime cannot serve (the embedded backend in a multi-process server, see
    :class:`~resonate_web._core.runtime.Portal`) answers 503 ``backend-unavailable``
    with the fix in ``detail``, on every route, so health checks fail too.
    """
    try:
        hosted.portal.check_server(multiprocess=multiprocess)
        quick = hosted.gateway.quick(route.name, request)
        if quick is not None:
            return quick
        return hosted.portal.call(hosted.gateway.handle(route.name, request, instance))
    except ConfigurationError as exc:
        return _refused(exc, instance)


async def serve_async(hosted: Hosted, route: Route, request: Request, instance: str) -> Response:
    """:func:`serve_sync` for async code on any loop (FastAPI, Django under ASGI)."""
    try:
        hosted.portal.check_server(multiprocess=False)
        quick = hosted.gateway.quick(route.name, request)
        if quick is not None:
            return quick
        return await hosted.portal.acall(hosted.gateway.handle(route.name, request, instance))
    except ConfigurationError as exc:
        return _refused(exc, instance)


def sync_stream(hosted: Hosted, response: Response) -> Iterator[bytes] | None:
    """A streamed response's body as a sync iterator (driven on the portal loop)."""
    return None if response.stream is None else hosted.portal.iterate(response.stream)


def async_stream(hosted: Hosted, response: Response) -> AsyncIterator[bytes] | None:
    """A streamed response's body as an async iterator, for any loop."""
    return None if response.stream is None else hosted.portal.aiterate(response.stream)
