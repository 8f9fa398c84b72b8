"""The HTTP contract's neutral types, shared by the gateway, its route groups and
the adapters: a request, a response, an event-stream frame, the caller it is
for, and what a route group needs of the gateway (:class:`Service`).

Nothing here knows a framework or a route: the adapters turn their framework's
request into a :class:`Request` and a :class:`Response` back into theirs.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from resonate_web.problems import PROBLEM_CONTENT_TYPE, Problem

if TYPE_CHECKING:
    import asyncio

    from resonate.handle import ResonateHandle
    from resonate.types import PromiseRecord

    from resonate_web._core.exposure import Exposed
    from resonate_web._core.runtime import Runtime
    from resonate_web.settings import Settings

JSON = "application/json"
#: What ``resonate-web dev`` names itself in its ``/health`` answer.
DEV_SERVER = "resonate-web dev"
EVENT_STREAM = "text/event-stream"
#: The headers of every event stream served: never cached, never buffered by a proxy.
EVENT_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_PREFIX_RE = re.compile(r"[A-Za-z0-9._~-]{0,128}")


def forbidden(detail: str) -> Problem:
    return Problem("forbidden", detail)


@dataclass(frozen=True)
class Principal:
    """An authorized caller: who (``subject``) and which ids are theirs (``prefix``)."""

    subject: str | None = None
    prefix: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _PREFIX_RE.fullmatch(self.prefix) or ".." in self.prefix:
            raise forbidden("the principal's id prefix is not 0-128 characters of the id alphabet")


@dataclass(frozen=True)
class Request:
    """A neutral HTTP request. ``headers`` keys are lower case; ``query`` holds
    each parameter's first value; ``prefix`` is the mount prefix as served (so
    links point back at this mount); ``user`` is whoever the framework says is
    calling (Django's ``request.user``, an ASGI scope's ``user``, WSGI's
    ``REMOTE_USER``), for an authorize hook to look at; ``principal`` is what
    the hook returned."""

    method: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    prefix: str = ""
    user: Any = None
    principal: Principal | None = None
    #: Every value of the repeatable ``tag`` query parameter, in order.
    tag_filters: tuple[str, ...] = ()

    @property
    def scope(self) -> str:
        """The id prefix of the caller: what its ids are stored under."""
        return self.principal.prefix if self.principal is not None else ""


@dataclass
class Response:
    """A neutral HTTP response: a JSON body, bytes sent as they are (the dashboard's
    files, with their ``media_type``), or an event stream."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = JSON
    stream: AsyncIterator[bytes] | None = None

    def content(self) -> bytes:
        if self.body is None and self.status == 204:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return msgspec.json.encode(self.body)


def event_stream(stream: AsyncIterator[bytes]) -> Response:
    """An event-stream response of ``stream``'s frames (see :func:`sse_frame`)."""
    return Response(200, media_type=EVENT_STREAM, headers=dict(EVENT_STREAM_HEADERS), stream=stream)


def scoped(scope: str, id: str) -> str:
    """``id`` as stored for a caller whose ids live under ``scope``."""
    if not scope:
        return id
    stored = scope + id
    if len(stored) > 256:
        raise Problem(
            "invalid-id", f"the id is too long for this caller (at most {256 - len(scope)})"
        )
    return stored


def problem_response(problem: Problem, instance: str) -> Response:
    return Response(
        status=problem.status,
        body=problem.body(instance),
        headers=problem.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def sse_frame(event: str, data: Any) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


class Feed(Protocol):
    """The live list's feed, as a route group sees it."""

    def subscribe(self) -> AbstractContextManager[asyncio.Queue[Any]]: ...  # pragma: no cover


class Service(Protocol):
    """What a route group (listing, settling, the dashboard) needs of the gateway."""

    @property
    def settings(self) -> Settings: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def authorize(self) -> Any: ...

    @property
    def feed(self) -> Feed: ...

    def bounded[T](self, awaitable: Awaitable[T]) -> Awaitable[T]: ...

    async def read(self, id: str) -> PromiseRecord | None: ...

    async def lookup(self, request: Request) -> tuple[str, PromiseRecord]: ...

    async def document(
        self, prefix: str, id: str, record: PromiseRecord, scope: str = ""
    ) -> dict[str, Any]: ...

    def link(self, prefix: str, id: str) -> str: ...

    async def begin(
        self,
        exposed: Exposed,
        id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        owner: str = "",
        tags: dict[str, str] | None = None,
        rerun_of: str | None = None,
        priority: int | None = None,
    ) -> tuple[PromiseRecord, ResonateHandle[Any] | None]: ...

    async def waiting_for(self, records: list[PromiseRecord]) -> dict[str, str]: ...

    def announce(self, id: str, record: PromiseRecord) -> None: ...
